#include "engine/optim/fused_update.h"

#include <cmath>

#include "engine/optim/parallel_sum.h"

namespace ruche {
namespace {

inline float sign(float v) { return static_cast<float>((v > 0) - (v < 0)); }

// One element of optimizer K. p, g: parameter and gradient; s0, s1: its slots.
template <OptimizerKind K>
inline void update_element(const FusedUpdate& u, const RangeStep& c, float& p, float g, float* s0,
                           float* s1) {
  const OptimizerHyper& h = u.hyper;
  float d = g;
  if (c.l1_decay != 0) d += c.l1_decay * sign(p);
  if constexpr (K == OptimizerKind::adamw) {
    p *= c.decoupled;  // decoupled weight decay, before the Adam update (torch.optim.AdamW)
  } else {
    if (c.weight_decay != 0) d += c.weight_decay * p;  // L2 added to the gradient
  }
  if constexpr (K == OptimizerKind::sgd || K == OptimizerKind::lars) {
    if constexpr (K == OptimizerKind::lars) d *= c.ratio;
    if (h.momentum != 0) {
      *s0 = h.momentum * *s0 + d;  // dampening 0
      d = h.nesterov ? d + h.momentum * *s0 : *s0;
    }
    p -= c.lr * d;
  } else if constexpr (K == OptimizerKind::adam || K == OptimizerKind::adamw) {
    *s0 = h.beta1 * *s0 + (1 - h.beta1) * d;
    *s1 = h.beta2 * *s1 + (1 - h.beta2) * d * d;
    const float denom = std::sqrt(*s1) / u.bias_correction2_sqrt + h.eps;
    p -= c.step_size * (*s0 / denom);
  } else {  // rmsprop
    *s0 = h.alpha * *s0 + (1 - h.alpha) * d * d;
    const float avg = std::sqrt(*s0) + h.eps;
    if (h.momentum > 0) {
      *s1 = h.momentum * *s1 + d / avg;
      p -= c.lr * *s1;
    } else {
      p -= c.lr * (d / avg);
    }
  }
}

template <OptimizerKind K>
void run(const FusedUpdate& u) {
  std::int64_t total = 0;
  for (int r = 0; r < u.num_ranges; ++r) total += u.ranges[r].end - u.ranges[r].begin;
  float* params = u.params;
  const float* grads = u.grads;
  float* slot0 = u.slot0;
  float* slot1 = u.slot1;
  // One team for the whole buffer; each range is split among the threads without a barrier
  // between ranges (they are disjoint).
#pragma omp parallel if (total >= optim_detail::kParallelMin)
  for (int r = 0; r < u.num_ranges; ++r) {
    const ParamRange& range = u.ranges[r];
    const RangeStep c = u.steps[r];
#pragma omp for schedule(static) nowait
    for (std::int64_t i = range.begin; i < range.end; ++i) {
      update_element<K>(u, c, params[i], grads[i], slot0 ? slot0 + i : nullptr,
                        slot1 ? slot1 + i : nullptr);
    }
  }
}

}  // namespace

void lars_trust_ratios(const FusedUpdate& u, RangeStep* steps) {
  const float* p = u.params;
  const float* g = u.grads;
  for (int r = 0; r < u.num_ranges; ++r) {
    const ParamRange& range = u.ranges[r];
    RangeStep& c = steps[r];
    c.ratio = 1;
    if (!range.adapt) continue;
    const auto sums =
        optim_detail::parallel_sums<2>(range.begin, range.end, [p, g](std::int64_t i, auto& acc) {
          acc[0] += static_cast<double>(p[i]) * p[i];
          acc[1] += static_cast<double>(g[i]) * g[i];
        });
    const double p_norm = std::sqrt(sums[0]);
    const double g_norm = std::sqrt(sums[1]);
    if (p_norm > 0 && g_norm > 0) {
      c.ratio = static_cast<float>(u.hyper.trust * p_norm / (g_norm + c.weight_decay * p_norm));
    }
  }
}

void fused_update_cpu(const FusedUpdate& u) {
  switch (u.kind) {
    case OptimizerKind::sgd:
      return run<OptimizerKind::sgd>(u);
    case OptimizerKind::adam:
      return run<OptimizerKind::adam>(u);
    case OptimizerKind::adamw:
      return run<OptimizerKind::adamw>(u);
    case OptimizerKind::rmsprop:
      return run<OptimizerKind::rmsprop>(u);
    case OptimizerKind::lars:
      return run<OptimizerKind::lars>(u);
  }
}

}  // namespace ruche
