// One element of the pointwise losses of ops.h (pointwise_loss_forward/backward), shared by
// ops/cpu and ops/cuda so both devices compute the same formula.
#pragma once

// NOLINTNEXTLINE(modernize-deprecated-headers): the global C functions, CUDA's device ones too
#include <math.h>

#include "ops/ops.h"

#if defined(__CUDACC__)
#define RUCHE_LOSS_HD __host__ __device__
#else
#define RUCHE_LOSS_HD
#endif

namespace ruche::ops {

// The loss of one element, in double.
RUCHE_LOSS_HD inline double pointwise_loss(PointwiseLoss kind, double beta, double pred,
                                           double target) {
  const double d = pred - target;
  switch (kind) {
    case PointwiseLoss::l1:
      return fabs(d);
    case PointwiseLoss::smooth_l1:
      return fabs(d) < beta ? 0.5 * d * d / beta : fabs(d) - 0.5 * beta;
    case PointwiseLoss::bce_logits:
      // PyTorch's stable form, (1 - t) z + max(-z, 0) + log(exp(-max(-z, 0)) + exp(-z - max(-z,
      // 0))), is max(z, 0) - z t + log1p(exp(-|z|)).
      return (pred > 0 ? pred : 0.0) - pred * target + log1p(exp(-fabs(pred)));
  }
  return 0;
}

// d loss / d pred of one element (before the 1 / count of the mean).
RUCHE_LOSS_HD inline float pointwise_loss_grad(PointwiseLoss kind, float beta, float pred,
                                               float target) {
  const float d = pred - target;
  switch (kind) {
    case PointwiseLoss::l1:
      return d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f);
    case PointwiseLoss::smooth_l1:
      return fabsf(d) < beta ? d / beta : (d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f));
    case PointwiseLoss::bce_logits:
      return 1.0f / (1.0f + expf(-pred)) - target;
  }
  return 0;
}

}  // namespace ruche::ops
