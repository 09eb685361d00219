// A small net (convolutions, batch norm, a frozen bias) and an SGD-momentum optimizer whose state
// fills every region of a checkpoint, for the checkpoint tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/checkpoint/checkpoint.h"
#include "engine/graph/net.h"
#include "engine/optim/optimizer.h"
#include "engine/proto/text_format.h"

namespace ruche::checkpoint_test {

namespace fs = std::filesystem;

inline constexpr const char* kNet = R"(
name: "small"
layer { name: "input" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "c1" top: "b1" }
layer { name: "act1" type: "ReLU" bottom: "b1" top: "b1" }
layer { name: "conv2" type: "Convolution" bottom: "b1" top: "c2"
        convolution_param { num_output: 3 kernel_size: 3 } }
layer { name: "pool" type: "Pooling" bottom: "c2" top: "p"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "p" top: "logits"
        param { lr_mult: 1 } param { lr_mult: 0 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "label" top: "loss" }
)";

// The same net with conv2 twice as wide: "another net".
inline std::string wider_net() {
  std::string text = kNet;
  const std::string from = "num_output: 3";
  text.replace(text.find(from), from.size(), "num_output: 6");
  return text;
}

struct Model {
  std::unique_ptr<Net> net;
  std::unique_ptr<Optimizer> optimizer;
  StateLayout layout;
};

// A model whose every state byte is set from `seed` (parameters, momentum, buffers).
inline Model make_model(std::uint64_t seed, const std::string& net_text = kNet) {
  Model m;
  NetOptions options;
  options.batch_size = 2;
  options.sample_shape = {2, 6, 6};
  options.num_classes = 5;
  m.net = Net::build(parse_net(net_text, "small.prototxt", nullptr), options);
  m.net->init_params(seed);
  proto::SolverParameter solver;
  parse_prototxt("type: 'sgd' momentum: 0.9", "solver", solver);
  m.optimizer = make_optimizer(solver, m.net->param_table(), m.net->num_trainable());
  m.layout = training_state_layout(*m.net, *m.optimizer);
  // Distinct values everywhere, so a byte in the wrong place shows.
  for (const auto& region : m.layout.regions) {
    float* p = region.tensor.data<float>();
    for (std::int64_t i = 0; i < region.tensor.numel(); ++i) {
      p[i] = static_cast<float>(seed) * 1000.0f + static_cast<float>(i) * 0.25f +
             static_cast<float>(region.name.size());
    }
  }
  return m;
}

// The whole state as bytes.
inline std::vector<std::uint8_t> state_bytes(const StateLayout& layout) {
  std::vector<std::uint8_t> out;
  snapshot(layout, {0, layout.total_bytes()}, out);
  return out;
}

inline CheckpointMeta meta_of(const Model& m, std::int64_t step, int world) {
  CheckpointMeta meta;
  meta.position.step = step;
  meta.position.epoch = 2;
  meta.position.samples_in_epoch = 640;
  meta.position.micro_batches = 77;
  meta.position.best = 0.875;
  meta.position.best_epoch = 1;
  meta.world_size = world;
  meta.threads = 2;
  meta.net = kNet;
  meta.solver = "type: 'sgd' momentum: 0.9";
  meta.net_hash = state_hash(m.layout);
  return meta;
}

// Saves the model's state as `world` ranks would (each writes its shard), then commits.
inline std::string save(const Model& m, const std::string& root, std::int64_t step, int world,
                        int keep = 3) {
  std::string dir = (fs::path(root) / checkpoint_dir_name(step)).string();
  std::vector<ShardRecord> shards;
  for (int r = 0; r < world; ++r) {
    const ByteRange range = shard_range(m.layout.total_bytes(), r, world);
    std::vector<std::uint8_t> bytes;
    snapshot(m.layout, range, bytes);
    shards.push_back(write_shard(dir, r, world, range, bytes));
  }
  commit_checkpoint(root, step, m.layout, meta_of(m, step, world), shards, keep);
  return dir;
}

// Removes the tests' directories when the test program exits.
struct TempDirs {
  std::vector<std::string> dirs;
  ~TempDirs() {
    std::error_code ec;
    for (const auto& d : dirs) fs::remove_all(d, ec);
  }
};
inline TempDirs temp_dirs;

// A fresh directory for one test.
inline std::string temp_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("ruche-ckpt-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  temp_dirs.dirs.push_back(dir.string());
  return dir.string();
}

}  // namespace ruche::checkpoint_test
