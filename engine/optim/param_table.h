// The optimizer's view of the net: one range of the flat parameter buffer per trainable tensor,
// with its multipliers, built once from Net's ParamEntry list (docs/ARCHITECTURE.md "The flat
// buffer").
#pragma once

#include <cstdint>
#include <vector>

#include "engine/graph/net.h"

namespace ruche {

// Elements [begin, end) of params() and grads(): one trainable tensor.
struct ParamRange {
  std::int64_t begin = 0, end = 0;
  float lr_mult = 1.0f;
  // decay_mult, or 0 for biases and batch-norm parameters under no_decay_bn_bias. It scales both
  // the L2 (or decoupled) weight decay and the L1 decay.
  float decay_mult = 1.0f;
  // LARS leaves biases and batch-norm parameters out of layer adaptation (trust ratio 1).
  bool adapt = true;
  int entry = 0;  // index into the ParamEntry list, for messages
};

// The ranges of the trainable entries, in buffer order. Frozen entries and buffers are skipped;
// a trainable entry must lie inside [0, num_trainable) (the gradient buffer), else ruche::Error.
std::vector<ParamRange> build_param_ranges(const std::vector<ParamEntry>& table,
                                           std::int64_t num_trainable, bool no_decay_bn_bias);

}  // namespace ruche
