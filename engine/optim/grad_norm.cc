#include "engine/optim/grad_norm.h"

#include <cmath>

#include "ops/ops.h"

namespace ruche {
namespace {

void check_grads(const char* op, const Tensor& grads, std::int64_t count) {
  RUCHE_REQUIRE(grads.defined()) << op << ": no gradient buffer given";
  grads.check_dtype(DType::f32, op);
  RUCHE_REQUIRE(grads.is_contiguous()) << op << ": the gradient buffer is not contiguous";
  RUCHE_REQUIRE(count >= 0 && count <= grads.numel())
      << op << ": " << count << " trainable elements but the gradient buffer holds "
      << grads.numel();
}

}  // namespace

GradStats grad_stats(const Tensor& grads, std::int64_t count) {
  check_grads("grad_stats", grads, count);
  const ops::SumSquaresFinite sums = ops::SumSquaresFinite::now(grads, count);
  GradStats stats;
  stats.finite = sums.finite;
  stats.sum_squares = sums.sum_squares;
  stats.norm = std::sqrt(sums.sum_squares);
  return stats;
}

float clip_grad_norm(Tensor& grads, std::int64_t count, const GradStats& stats, float max_norm) {
  check_grads("clip_grad_norm", grads, count);
  if (!(max_norm > 0) || !stats.finite || !std::isfinite(stats.norm)) return 1.0f;
  const float factor = static_cast<float>(max_norm / (stats.norm + 1e-6));
  if (!(factor < 1.0f)) return 1.0f;
  Tensor trainable = grads.view({grads.numel()}).narrow(0, 0, count);
  ops::scale(factor, trainable);
  return factor;
}

}  // namespace ruche
