// Flag values the subcommands share: shapes (--input C,H,W) and nets named by --model or --net.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "engine/graph/net.h"
#include "engine/proto/ruche.pb.h"
#include "engine/tensor/shape.h"
#include "ops/ops.h"

namespace ruche::tools {

// "3,32,32" -> [3, 32, 32] (one to three positive integers); "" -> an empty shape. Anything
// else is a ruche::Error naming the flag.
Shape parse_shape_flag(const std::string& flag, const std::string& text);

// The net of --model NAME (built for `input` and `classes`) or --net FILE: exactly one of them.
proto::NetParameter net_from_flags(const std::string& model, const std::string& net_file,
                                   const Shape& input, int classes, NetSource* source);

// --device, --precision, --cudnn-benchmark, --deterministic: where and in what arithmetic a net
// runs (train, time).
struct DeviceFlags {
  std::string device = "cpu";
  std::string precision = "fp32";
  bool cudnn_benchmark = false;
  bool deterministic = false;

  void add_to(CLI::App* cmd);
  // The device for a process that is local rank `local_rank` of `local_size` on its node: "cuda"
  // means local_gpu(...). Throws a one-line ruche::Error when that GPU does not exist.
  Device resolve(int local_rank = 0, int local_size = 1) const;
  // The GPU math of --precision, --cudnn-benchmark and --deterministic (checked even for cpu runs:
  // a typo is an error everywhere).
  ops::GpuMath gpu_math() const;
};

}  // namespace ruche::tools
