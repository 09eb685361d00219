// Element-wise arithmetic on same-shaped f32 tensors; outputs may alias inputs.
#include <functional>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

namespace {
// y = f(a, b) element by element: add and mul.
template <typename F>
void binary(const char* op, const Tensor& a, const Tensor& b, Tensor& y, F f) {
  check_dense(op, "a", a);
  check_dense(op, "b", b);
  check_dense(op, "y", y);
  check_same_shape_as(op, "b", b, "a", a);
  check_same_shape_as(op, "y", y, "a", a);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* py = y.data<float>();
  const std::int64_t n = a.numel();
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) py[i] = f(pa[i], pb[i]);
}
}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& y) { binary("add", a, b, y, std::plus<>()); }

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

void mul(const Tensor& a, const Tensor& b, Tensor& y) {
  binary("mul", a, b, y, std::multiplies<>());
}

void max_into(const Tensor& x, float index, Tensor& y, Tensor& mask) {
  check_dense("max_into", "x", x);
  check_dense("max_into", "y", y);
  check_dense("max_into", "mask", mask);
  check_same_shape_as("max_into", "y", y, "x", x);
  check_same_shape_as("max_into", "mask", mask, "x", x);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  float* pm = mask.data<float>();
  const std::int64_t n = x.numel();
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) {
    if (px[i] > py[i]) {
      py[i] = px[i];
      pm[i] = index;
    }
  }
}

void max_backward(const Tensor& mask, float index, const Tensor& dy, Tensor& dx) {
  check_dense("max_backward", "mask", mask);
  check_dense("max_backward", "dy", dy);
  check_dense("max_backward", "dx", dx);
  check_same_shape_as("max_backward", "mask", mask, "dy", dy);
  check_same_shape_as("max_backward", "dx", dx, "dy", dy);
  const float* pm = mask.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  const std::int64_t n = dy.numel();
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) pdx[i] = pm[i] == index ? pdy[i] : 0.0f;
}

}  // namespace ruche::ops::cpu
