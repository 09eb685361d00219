// The fused optimizer update's one definition: the hyperparameters, the per-range table, and the
// element formula of every optimizer, shared by the CPU loop (ops/cpu/optim.cc) and the CUDA kernel
// (ops/cuda/optim.cu) so both devices compute the same thing. No CUDA header: RUCHE_HOST_DEVICE
// marks the formula __host__ __device__ only when nvcc compiles it.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>

#include "engine/host_device.h"

namespace ruche {
class Tensor;
}

namespace ruche::ops {

enum class OptimizerKind : std::uint8_t { sgd, adam, adamw, rmsprop, lars };

// Hyperparameters shared by every range.
struct OptimizerHyper {
  float momentum = 0;                  // sgd, lars, rmsprop (0: none)
  bool nesterov = false;               // sgd, lars
  bool caffe_momentum = false;         // sgd: v = m v + lr d; p -= v (Caffe's order)
  float weight_decay = 0;              // L2 added to the gradient; adamw: decoupled
  float l1_decay = 0;                  // l1 * sign(p) added to the gradient (every optimizer)
  float beta1 = 0.9f, beta2 = 0.999f;  // adam, adamw
  float eps = 1e-8f;                   // adam, adamw, rmsprop
  float alpha = 0.99f;                 // rmsprop
  float trust = 0.001f;                // lars
};

// Elements [begin, end) of the flat buffers: one trainable tensor.
struct UpdateRange {
  std::int64_t begin = 0, end = 0;
  bool adapt = true;  // lars: takes a trust ratio (false for biases and batch-norm parameters)
};

// What one range needs this step, computed on the host before the element loop.
struct RangeStep {
  float lr = 0;            // lr * lr_mult
  float weight_decay = 0;  // weight_decay * decay_mult
  float l1_decay = 0;      // l1_decay * decay_mult
  float decoupled = 1;     // adamw: 1 - lr * weight_decay
  float step_size = 0;     // adam, adamw: lr / (1 - beta1^t)
  float ratio = 1;         // lars: the trust ratio (the op computes it; ignored on input)
};

// One call of ops::optimizer_update: host arrays, one RangeStep per UpdateRange.
struct OptimizerStep {
  OptimizerKind kind = OptimizerKind::sgd;
  OptimizerHyper hyper;
  std::span<const UpdateRange> ranges;  // disjoint, in buffer order
  std::span<const RangeStep> steps;
  float bias_correction2_sqrt = 1;  // adam, adamw: sqrt(1 - beta2^t)
};

// Which slots the kind uses: sgd, lars: slot0 = momentum_buffer (when momentum != 0).
// adam(w): slot0 = exp_avg, slot1 = exp_avg_sq. rmsprop: slot0 = square_avg, slot1 =
// momentum_buffer (when momentum > 0).
inline bool uses_slot0(OptimizerKind kind, const OptimizerHyper& h) {
  return kind == OptimizerKind::adam || kind == OptimizerKind::adamw ||
         kind == OptimizerKind::rmsprop || h.momentum != 0;
}
inline bool uses_slot1(OptimizerKind kind, const OptimizerHyper& h) {
  return kind == OptimizerKind::adam || kind == OptimizerKind::adamw ||
         (kind == OptimizerKind::rmsprop && h.momentum > 0);
}

// The argument checks both devices run first (ruche::Error naming optimizer_update and the
// argument): ranges ordered and disjoint, one step per range, params, grads and the used slots f32,
// contiguous, holding every range. Returns the end of the last range (0 for none).
std::int64_t check_optimizer_update(const OptimizerStep& step, const Tensor& params,
                                    const Tensor& grads, const Tensor& slot0, const Tensor& slot1);

// LARS: trust * ||p|| / (||g|| + wd ||p||) from the norms in double; 1 when either norm is 0.
RUCHE_HOST_DEVICE inline float lars_trust_ratio(double p_norm, double g_norm, float weight_decay,
                                                float trust) {
  if (!(p_norm > 0 && g_norm > 0)) return 1.0f;
  return static_cast<float>(trust * p_norm / (g_norm + weight_decay * p_norm));
}

namespace optim_detail {
RUCHE_HOST_DEVICE inline float sign(float v) { return static_cast<float>((v > 0) - (v < 0)); }
RUCHE_HOST_DEVICE inline float root(float v) {
#if defined(__CUDA_ARCH__)
  return sqrtf(v);  // IEEE round-to-nearest (nvcc's default -prec-sqrt=true)
#else
  return std::sqrt(v);
#endif
}
}  // namespace optim_detail

// One element of optimizer K. p, g: parameter and gradient; s0, s1: its slots (null where unused).
template <OptimizerKind K>
RUCHE_HOST_DEVICE inline void optimizer_element(const OptimizerHyper& h, const RangeStep& c,
                                                float bias_correction2_sqrt, float& p, float g,
                                                float* s0, float* s1) {
  float d = g;
  if (c.l1_decay != 0) d += c.l1_decay * optim_detail::sign(p);
  if constexpr (K == OptimizerKind::adamw) {
    p *= c.decoupled;  // decoupled weight decay, before the Adam update (torch.optim.AdamW)
  } else {
    if (c.weight_decay != 0) d += c.weight_decay * p;  // L2 added to the gradient
  }
  if constexpr (K == OptimizerKind::sgd || K == OptimizerKind::lars) {
    if constexpr (K == OptimizerKind::lars) d *= c.ratio;
    if (h.caffe_momentum && h.momentum != 0) {  // lr inside the history: Caffe's SGDSolver
      const float previous = *s0;
      *s0 = h.momentum * *s0 + c.lr * d;
      p -= h.nesterov ? (1 + h.momentum) * *s0 - h.momentum * previous : *s0;
      return;
    }
    if (h.momentum != 0) {
      *s0 = h.momentum * *s0 + d;  // dampening 0
      d = h.nesterov ? d + h.momentum * *s0 : *s0;
    }
    p -= c.lr * d;
  } else if constexpr (K == OptimizerKind::adam || K == OptimizerKind::adamw) {
    *s0 = h.beta1 * *s0 + (1 - h.beta1) * d;
    *s1 = h.beta2 * *s1 + (1 - h.beta2) * d * d;
    const float denom = optim_detail::root(*s1) / bias_correction2_sqrt + h.eps;
    p -= c.step_size * (*s0 / denom);
  } else {  // rmsprop
    *s0 = h.alpha * *s0 + (1 - h.alpha) * d * d;
    const float avg = optim_detail::root(*s0) + h.eps;
    if (h.momentum > 0) {
      *s1 = h.momentum * *s1 + d / avg;
      p -= c.lr * *s1;
    } else {
      p -= c.lr * (d / avg);
    }
  }
}

}  // namespace ruche::ops
