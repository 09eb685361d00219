// Softmax over dim 1 of [N, C], one row per iteration; the row maximum is subtracted first so
// exp never overflows.
#include <cmath>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void softmax_forward(const Tensor& x, Tensor& y) {
  const char* op = "softmax_forward";
  check_dense(op, "input", x);
  check_dense(op, "output", y);
  RUCHE_REQUIRE(x.ndim() == 2) << op << ": input must be [N, C], got " << x.str();
  check_same_shape_as(op, "output", y, "input", x);
  const std::int64_t N = x.size(0), C = x.size(1);
  const float* px = x.data<float>();
  float* py = y.data<float>();
#pragma omp parallel for if (N * C >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    const float* xr = px + n * C;
    float* yr = py + n * C;
    float m = -INFINITY;
    for (std::int64_t c = 0; c < C; ++c) m = std::fmax(m, xr[c]);
    double sum = 0;
    for (std::int64_t c = 0; c < C; ++c) {
      yr[c] = std::exp(xr[c] - m);  // x may be y: each x[c] is read before it is overwritten
      sum += yr[c];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (std::int64_t c = 0; c < C; ++c) yr[c] *= inv;
  }
}

void softmax_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  const char* op = "softmax_backward";
  check_dense(op, "y", y);
  check_dense(op, "dy", dy);
  check_dense(op, "dx", dx);
  RUCHE_REQUIRE(y.ndim() == 2) << op << ": y must be [N, C], got " << y.str();
  check_same_shape_as(op, "dy", dy, "y", y);
  check_same_shape_as(op, "dx", dx, "y", y);
  const std::int64_t N = y.size(0), C = y.size(1);
  const float* py = y.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  // dx_c = y_c (dy_c - sum_k y_k dy_k): the Jacobian diag(y) - y y^T applied to dy.
#pragma omp parallel for if (N * C >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    const float* yr = py + n * C;
    const float* dyr = pdy + n * C;
    float* dxr = pdx + n * C;
    double dot = 0;
    for (std::int64_t c = 0; c < C; ++c) dot += static_cast<double>(yr[c]) * dyr[c];
    const float d = static_cast<float>(dot);
    for (std::int64_t c = 0; c < C; ++c) dxr[c] = yr[c] * (dyr[c] - d);
  }
}

}  // namespace ruche::ops::cpu
