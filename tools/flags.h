// Flag values the subcommands share: shapes (--input C,H,W) and nets named by --model or --net.
#pragma once

#include <string>

#include "engine/graph/net.h"
#include "engine/proto/ruche.pb.h"
#include "engine/tensor/shape.h"

namespace ruche::tools {

// "3,32,32" -> [3, 32, 32] (one to three positive integers); "" -> an empty shape. Anything
// else is a ruche::Error naming the flag.
Shape parse_shape_flag(const std::string& flag, const std::string& text);

// The net of --model NAME (built for `input` and `classes`) or --net FILE: exactly one of them.
proto::NetParameter net_from_flags(const std::string& model, const std::string& net_file,
                                   const Shape& input, int classes, NetSource* source);

}  // namespace ruche::tools
