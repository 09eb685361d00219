// The fused optimizer update: one pass over the ranges of the flat buffers, every optimizer's
// element formula in one place. It takes raw pointers and per-range constants so that a CUDA
// kernel can mirror it line for line.
#pragma once

#include <cstdint>

#include "engine/optim/param_table.h"

namespace ruche {

enum class OptimizerKind : std::uint8_t { sgd, adam, adamw, rmsprop, lars };

// Hyperparameters shared by every range.
struct OptimizerHyper {
  float momentum = 0;                  // sgd, lars, rmsprop (0: none)
  bool nesterov = false;               // sgd, lars
  float weight_decay = 0;              // L2 added to the gradient; adamw: decoupled
  float l1_decay = 0;                  // l1 * sign(p) added to the gradient (every optimizer)
  float beta1 = 0.9f, beta2 = 0.999f;  // adam, adamw
  float eps = 1e-8f;                   // adam, adamw, rmsprop
  float alpha = 0.99f;                 // rmsprop
  float trust = 0.001f;                // lars
};

// What one range needs this step, computed on the host before the element loop.
struct RangeStep {
  float lr = 0;            // lr * lr_mult
  float weight_decay = 0;  // weight_decay * decay_mult
  float l1_decay = 0;      // l1_decay * decay_mult
  float decoupled = 1;     // adamw: 1 - lr * weight_decay
  float step_size = 0;     // adam, adamw: lr / (1 - beta1^t)
  float ratio = 1;         // lars: the trust ratio multiplying the decayed gradient
};

struct FusedUpdate {
  OptimizerKind kind = OptimizerKind::sgd;
  OptimizerHyper hyper;
  const ParamRange* ranges = nullptr;
  const RangeStep* steps = nullptr;  // one per range
  int num_ranges = 0;
  float* params = nullptr;
  const float* grads = nullptr;
  // sgd, lars: slot0 = momentum_buffer. adam(w): slot0 = exp_avg, slot1 = exp_avg_sq.
  // rmsprop: slot0 = square_avg, slot1 = momentum_buffer. Null where unused.
  float* slot0 = nullptr;
  float* slot1 = nullptr;
  float bias_correction2_sqrt = 1;  // adam, adamw: sqrt(1 - beta2^t)
};

// LARS: the trust ratio of each range (1 for ranges that do not adapt), written to steps[r].ratio.
// steps must already hold weight_decay. Reads params and grads.
void lars_trust_ratios(const FusedUpdate& u, RangeStep* steps);

// Applies the update to every range on the OpenMP team. Allocates nothing.
void fused_update_cpu(const FusedUpdate& u);

}  // namespace ruche
