// The global gradient norm, the non-finite check of the NaN guard, and clipping by global norm
// (torch.nn.utils.clip_grad_norm_ with norm_type 2).
#pragma once

#include <cstdint>

#include "engine/tensor/tensor.h"

namespace ruche {

struct GradStats {
  double sum_squares = 0;  // sum of g^2 over the trainable gradients, in double
  double norm = 0;         // sqrt(sum_squares)
  bool finite = true;      // false when any gradient is NaN or Inf
};

// One pass over grads[0, count) (f32, contiguous, any device; ops::sum_squares_finite), waiting
// for the device. Deterministic: on the CPU for a given thread count, on CUDA always.
GradStats grad_stats(const Tensor& grads, std::int64_t count);

// torch.nn.utils.clip_grad_norm_: when max_norm > 0 and max_norm / (norm + 1e-6) < 1, scales
// grads[0, count) by that factor. Returns the factor applied (1 when none). Does nothing when the
// gradients are not finite: the NaN guard decides what happens to such a step.
float clip_grad_norm(Tensor& grads, std::int64_t count, const GradStats& stats, float max_norm);

}  // namespace ruche
