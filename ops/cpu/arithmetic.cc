// Element-wise arithmetic on same-shaped f32 tensors; outputs may alias inputs.
#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void add(const Tensor& a, const Tensor& b, Tensor& y) {
  check_dense("add", "a", a);
  check_dense("add", "b", b);
  check_dense("add", "y", y);
  check_same_shape_as("add", "b", b, "a", a);
  check_same_shape_as("add", "y", y, "a", a);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* py = y.data<float>();
  const std::int64_t n = a.numel();
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) py[i] = pa[i] + pb[i];
}

void axpy(float alpha, const Tensor& x, Tensor& y) {
  check_dense("axpy", "x", x);
  check_dense("axpy", "y", y);
  check_same_shape_as("axpy", "y", y, "x", x);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const std::int64_t n = x.numel();
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) py[i] += alpha * px[i];
}

void scale(float alpha, Tensor& x) {
  check_dense("scale", "x", x);
  float* px = x.data<float>();
  const std::int64_t n = x.numel();
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) px[i] *= alpha;
}

}  // namespace ruche::ops::cpu
