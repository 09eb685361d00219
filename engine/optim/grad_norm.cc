#include "engine/optim/grad_norm.h"

#include <cmath>

#include "engine/optim/parallel_sum.h"

namespace ruche {
namespace {

void check_grads(const char* op, const Tensor& grads, std::int64_t count) {
  RUCHE_REQUIRE(grads.defined()) << op << ": no gradient buffer given";
  grads.check_dtype(DType::f32, op);
  RUCHE_REQUIRE(grads.device().is_cpu())
      << op << ": gradients on " << grads.device().str() << ", only CPU is implemented";
  RUCHE_REQUIRE(grads.is_contiguous()) << op << ": the gradient buffer is not contiguous";
  RUCHE_REQUIRE(count >= 0 && count <= grads.numel())
      << op << ": " << count << " trainable elements but the gradient buffer holds "
      << grads.numel();
}

}  // namespace

GradStats grad_stats(const Tensor& grads, std::int64_t count) {
  check_grads("grad_stats", grads, count);
  const float* g = grads.data<float>();
  const auto sums = optim_detail::parallel_sums<2>(0, count, [g](std::int64_t i, auto& acc) {
    const double v = g[i];
    acc[0] += v * v;
    if (!std::isfinite(g[i])) acc[1] += 1;
  });
  GradStats stats;
  stats.finite = sums[1] == 0;
  stats.sum_squares = sums[0];
  stats.norm = std::sqrt(sums[0]);
  return stats;
}

float clip_grad_norm(Tensor& grads, std::int64_t count, const GradStats& stats, float max_norm) {
  check_grads("clip_grad_norm", grads, count);
  if (!(max_norm > 0) || !stats.finite || !std::isfinite(stats.norm)) return 1.0f;
  const float factor = static_cast<float>(max_norm / (stats.norm + 1e-6));
  if (!(factor < 1.0f)) return 1.0f;
  float* g = grads.data<float>();
#pragma omp parallel for simd if (count >= optim_detail::kParallelMin)
  for (std::int64_t i = 0; i < count; ++i) g[i] *= factor;
  return factor;
}

}  // namespace ruche
