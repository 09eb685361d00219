// Weight penalties added to the loss: L1 = coeff * sum|w|, L2 = coeff / 2 * sum w^2. The sums run
// in double (a flat buffer holds millions of weights); backward adds into the gradient.
#include <cmath>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void l1_penalty_forward(const Tensor& w, float coeff, Tensor& loss) {
  check_dense("l1_penalty_forward", "w", w);
  check_scalar("l1_penalty_forward", "loss", loss);
  const float* pw = w.data<float>();
  const std::int64_t n = w.numel();
  double sum = 0;
#pragma omp parallel for reduction(+ : sum) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) sum += std::fabs(pw[i]);
  loss.data<float>()[0] = static_cast<float>(coeff * sum);
}

void l1_penalty_backward(const Tensor& w, float coeff, Tensor& dw) {
  check_dense("l1_penalty_backward", "w", w);
  check_dense("l1_penalty_backward", "dw", dw);
  check_same_shape_as("l1_penalty_backward", "dw", dw, "w", w);
  const float* pw = w.data<float>();
  float* pdw = dw.data<float>();
  const std::int64_t n = w.numel();
  // sign(0) = 0, as torch.sign and the subgradient PyTorch's abs uses.
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) {
    pdw[i] += pw[i] > 0.0f ? coeff : (pw[i] < 0.0f ? -coeff : 0.0f);
  }
}

void l2_penalty_forward(const Tensor& w, float coeff, Tensor& loss) {
  check_dense("l2_penalty_forward", "w", w);
  check_scalar("l2_penalty_forward", "loss", loss);
  const float* pw = w.data<float>();
  const std::int64_t n = w.numel();
  double sum = 0;
#pragma omp parallel for reduction(+ : sum) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(pw[i]) * pw[i];
  loss.data<float>()[0] = static_cast<float>(0.5 * coeff * sum);
}

void l2_penalty_backward(const Tensor& w, float coeff, Tensor& dw) {
  check_dense("l2_penalty_backward", "w", w);
  check_dense("l2_penalty_backward", "dw", dw);
  check_same_shape_as("l2_penalty_backward", "dw", dw, "w", w);
  axpy(coeff, w, dw);  // d/dw of coeff/2 |w|^2 is coeff * w, added to dw
}

}  // namespace ruche::ops::cpu
