// Which of cuDNN's usable convolution algorithms runs (ops/cuda/conv.cc), apart from cuDNN so the
// rule is tested on any machine. `ranked` is in cuDNN's order: its heuristic ranking, or the
// measured times of --cudnn-benchmark, fastest first.
#pragma once

#include <vector>

namespace ruche::ops::gpu {

// The top-ranked candidate, as PyTorch does by default; with --deterministic the first
// deterministic one (cudnn.deterministic). nullptr when none qualifies.
template <typename Candidate>
const Candidate* pick_convolution_algorithm(const std::vector<Candidate>& ranked,
                                            bool deterministic) {
  for (const Candidate& c : ranked) {
    if (!deterministic || c.deterministic) return &c;
  }
  return nullptr;
}

}  // namespace ruche::ops::gpu
