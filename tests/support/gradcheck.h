// Finite-difference gradient checks (Caffe's GradientChecker, in the norm-relative form).
//
// The scalar checked is L = sum(y * r) for a fixed random r, so dL/dy = r. Each checked input
// element moves by +-eps and the central difference (L+ - L-) / (2 eps) is compared with the
// analytic gradient. In fp32 the central difference has truncation error O(eps^2 f''') and
// rounding error about 1e-7 |L| / eps; eps = 1e-2 on O(1) inputs keeps both near 1e-4, so a
// norm-relative tolerance of 5e-3 passes correct ops and catches any real mistake (a wrong
// sign, a missing term or a transposed index gives errors of order 1).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "engine/rng/fill.h"
#include "engine/tensor/tensor.h"

namespace ruche::testing {

struct GradCheckOptions {
  float eps = 1e-2f;
  double tolerance = 5e-3;
  int max_checks_per_input = 96;  // elements probed per input, spread evenly
  std::uint64_t seed = 1234;
};

// forward(inputs) returns the output y. backward(inputs, dy) returns one gradient per input
// (an undefined Tensor for inputs that have none). `checked` lists the inputs to probe.
using ForwardFn = std::function<Tensor(std::vector<Tensor>&)>;
using BackwardFn = std::function<std::vector<Tensor>(std::vector<Tensor>&, const Tensor&)>;

inline double weighted_sum(const Tensor& y, const Tensor& r) {
  const auto vy = y.to_vector<float>();
  const auto vr = r.to_vector<float>();
  double s = 0;
  for (std::size_t i = 0; i < vy.size(); ++i) s += static_cast<double>(vy[i]) * vr[i];
  return s;
}

inline void expect_gradients_match(std::vector<Tensor> inputs, const ForwardFn& forward,
                                   const BackwardFn& backward, const std::vector<int>& checked,
                                   const GradCheckOptions& opt = {}) {
  Tensor y = forward(inputs).clone();
  Tensor r = Tensor::empty(y.shape());
  fill_uniform(r, -1.0f, 1.0f, RngStream{opt.seed, RngPurpose::test, 0, 0, 99});
  const std::vector<Tensor> grads = backward(inputs, r);
  ASSERT_EQ(grads.size(), inputs.size()) << "backward must return one gradient per input";

  for (int which : checked) {
    SCOPED_TRACE("input " + std::to_string(which));
    Tensor& x = inputs[static_cast<std::size_t>(which)];
    ASSERT_TRUE(grads[static_cast<std::size_t>(which)].defined()) << "no gradient for input";
    const auto analytic = grads[static_cast<std::size_t>(which)].to_vector<float>();
    ASSERT_EQ(static_cast<std::int64_t>(analytic.size()), x.numel());
    float* px = x.data<float>();
    const std::int64_t n = x.numel();
    const std::int64_t step = std::max<std::int64_t>(1, n / opt.max_checks_per_input);
    double diff = 0, ref = 0;
    for (std::int64_t i = 0; i < n; i += step) {
      const float saved = px[i];
      px[i] = saved + opt.eps;
      const double plus = weighted_sum(forward(inputs), r);
      px[i] = saved - opt.eps;
      const double minus = weighted_sum(forward(inputs), r);
      px[i] = saved;
      const double numeric = (plus - minus) / (2.0 * opt.eps);
      const double d = numeric - analytic[static_cast<std::size_t>(i)];
      diff += d * d;
      ref += numeric * numeric;
    }
    const double err = ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
    EXPECT_LE(err, opt.tolerance) << "finite differences disagree with the analytic gradient";
  }
}

// A CPU f32 tensor of `shape` with uniform values in [low, high), from stream `layer`.
inline Tensor random_tensor(const Shape& shape, std::uint32_t layer, float low = -1.0f,
                            float high = 1.0f, std::uint64_t seed = 42) {
  Tensor t = Tensor::empty(shape);
  fill_uniform(t, low, high, RngStream{seed, RngPurpose::test, 0, 0, layer});
  return t;
}

}  // namespace ruche::testing
