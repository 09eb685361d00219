// Element-wise activations. Backward reads the output y, never the input, so a layer may run them
// in place (x and y one tensor, dy and dx one tensor).
#include <cmath>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {
namespace {

// Applies f element-wise: out[i] = f(i); one thread for short tensors. (No `simd` clause: with
// it GCC 12 emits a scalar loop with a branch per element, 30x slower on activations.)
template <typename F>
void for_each_element(std::int64_t n, F f) {
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) f(i);
}

void check_alpha(const char* op, Activation kind, float alpha) {
  // Backward recovers sign(x) from sign(y); a negative slope would flip it.
  RUCHE_REQUIRE(kind != Activation::leaky_relu || (alpha >= 0.0f && std::isfinite(alpha)))
      << op << ": leaky_relu needs a negative slope >= 0, got " << alpha;
}

}  // namespace

void activation_forward(Activation kind, float alpha, const Tensor& x, Tensor& y) {
  const char* op = "activation_forward";
  check_dense(op, "input", x);
  check_dense(op, "output", y);
  check_same_shape_as(op, "output", y, "input", x);
  check_alpha(op, kind, alpha);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const std::int64_t n = x.numel();
  switch (kind) {
    case Activation::relu:
      // NaN passes through (as torch.relu), so the NaN guard still sees it.
      for_each_element(n, [=](std::int64_t i) { py[i] = px[i] < 0.0f ? 0.0f : px[i]; });
      break;
    case Activation::leaky_relu:
      for_each_element(n, [=](std::int64_t i) { py[i] = px[i] < 0.0f ? alpha * px[i] : px[i]; });
      break;
    case Activation::sigmoid:
      // exp(-x) overflows to inf for x < -88, and 1 / inf is the right limit, 0.
      for_each_element(n, [=](std::int64_t i) { py[i] = 1.0f / (1.0f + std::exp(-px[i])); });
      break;
    case Activation::tanh:
      for_each_element(n, [=](std::int64_t i) { py[i] = std::tanh(px[i]); });
      break;
    default:
      RUCHE_FAIL() << op << ": unknown activation " << static_cast<int>(kind);
  }
}

void activation_backward(Activation kind, float alpha, const Tensor& y, const Tensor& dy,
                         Tensor& dx) {
  const char* op = "activation_backward";
  check_dense(op, "y", y);
  check_dense(op, "dy", dy);
  check_dense(op, "dx", dx);
  check_same_shape_as(op, "dy", dy, "y", y);
  check_same_shape_as(op, "dx", dx, "y", y);
  check_alpha(op, kind, alpha);
  const float* py = y.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  const std::int64_t n = y.numel();
  switch (kind) {
    case Activation::relu:
      // A select, not a branch: the sign of y is random, and mispredictions cost 10x.
      for_each_element(n, [=](std::int64_t i) {
        const float g = pdy[i];
        pdx[i] = py[i] > 0.0f ? g : 0.0f;
      });
      break;
    case Activation::leaky_relu:
      for_each_element(n, [=](std::int64_t i) {
        const float g = pdy[i];
        pdx[i] = py[i] > 0.0f ? g : alpha * g;
      });
      break;
    case Activation::sigmoid:
      for_each_element(n, [=](std::int64_t i) { pdx[i] = pdy[i] * py[i] * (1.0f - py[i]); });
      break;
    case Activation::tanh:
      for_each_element(n, [=](std::int64_t i) { pdx[i] = pdy[i] * (1.0f - py[i] * py[i]); });
      break;
    default:
      RUCHE_FAIL() << op << ": unknown activation " << static_cast<int>(kind);
  }
}

void heaviside_forward(const Tensor& x, Tensor& y, float value_at_zero) {
  const char* op = "heaviside_forward";
  check_dense(op, "input", x);
  check_dense(op, "output", y);
  check_same_shape_as(op, "output", y, "input", x);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  // As torch.heaviside on CPU: -0 counts as zero, NaN gives 0.
  for_each_element(x.numel(), [=](std::int64_t i) {
    py[i] = px[i] == 0.0f ? value_at_zero : (px[i] > 0.0f ? 1.0f : 0.0f);
  });
}

}  // namespace ruche::ops::cpu
