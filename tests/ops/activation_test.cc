// Element-wise activations: PyTorch references, finite-difference gradients (inputs kept away
// from the kink at 0), in-place use, heaviside, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using ops::Activation;
using testing::reference;

struct Case {
  const char* name;
  Activation kind;
  float alpha;
};

const Case kCases[] = {{"relu", Activation::relu, 0.0f},
                       {"leaky_relu", Activation::leaky_relu, 0.1f},
                       {"sigmoid", Activation::sigmoid, 0.0f},
                       {"tanh", Activation::tanh, 0.0f}};

// Uniform in [-2, 2] with |x| >= 0.1, so a +-1e-2 probe never crosses relu's kink.
Tensor away_from_zero(const Shape& shape, std::uint32_t layer) {
  Tensor x = testing::random_tensor(shape, layer, -1.9f, 1.9f);
  float* p = x.data<float>();
  for (std::int64_t i = 0; i < x.numel(); ++i) p[i] += p[i] >= 0.0f ? 0.1f : -0.1f;
  return x;
}

TEST(Activation, MatchesTorch) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const std::string name = std::string("act_") + c.name;
    const Tensor x = reference(name, "x");
    Tensor y = Tensor::empty(x.shape());
    ops::activation_forward(c.kind, c.alpha, x, y);
    EXPECT_TENSORS_CLOSE(y, reference(name, "y"), 1e-5);
    Tensor dx = Tensor::empty(x.shape());
    ops::activation_backward(c.kind, c.alpha, y, reference(name, "dy"), dx);
    EXPECT_TENSORS_CLOSE(dx, reference(name, "dx"), 1e-5);
  }
}

TEST(Activation, GradientMatchesFiniteDifferences) {
  const Shape shape{3, 5, 7};
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    auto forward = [&](std::vector<Tensor>& in) {
      Tensor y = Tensor::empty(shape);
      ops::activation_forward(c.kind, c.alpha, in[0], y);
      return y;
    };
    auto backward = [&](std::vector<Tensor>& in, const Tensor& dy) {
      Tensor y = Tensor::empty(shape), dx = Tensor::empty(shape);
      ops::activation_forward(c.kind, c.alpha, in[0], y);
      ops::activation_backward(c.kind, c.alpha, y, dy, dx);
      return std::vector<Tensor>{dx};
    };
    testing::expect_gradients_match({away_from_zero(shape, 3)}, forward, backward, {0});
  }
}

TEST(Activation, InPlaceMatchesOutOfPlace) {
  const Shape shape{4, 1000};  // large enough for the threaded path
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const Tensor x = away_from_zero(shape, 4);
    const Tensor dy = testing::random_tensor(shape, 5);
    Tensor y = Tensor::empty(shape), dx = Tensor::empty(shape);
    ops::activation_forward(c.kind, c.alpha, x, y);
    ops::activation_backward(c.kind, c.alpha, y, dy, dx);
    Tensor buf = x.clone(), grad = dy.clone();
    ops::activation_forward(c.kind, c.alpha, buf, buf);
    ops::activation_backward(c.kind, c.alpha, buf, grad, grad);
    EXPECT_EQ(buf.to_vector(), y.to_vector());
    EXPECT_EQ(grad.to_vector(), dx.to_vector());
  }
}

TEST(Activation, SigmoidSaturatesWithoutNan) {
  Tensor x = Tensor::from_vector({-1000.0f, -90.0f, 0.0f, 90.0f, 1000.0f}, {5});
  Tensor y = Tensor::empty({5});
  ops::activation_forward(Activation::sigmoid, 0.0f, x, y);
  EXPECT_EQ(y.to_vector(), (std::vector<float>{0.0f, 0.0f, 0.5f, 1.0f, 1.0f}));
}

TEST(Heaviside, MatchesTorch) {
  const Tensor x = reference("act_heaviside", "x");
  Tensor y = Tensor::empty(x.shape());
  ops::heaviside_forward(x, y, 0.25f);
  EXPECT_EQ(y.to_vector(), reference("act_heaviside", "y").to_vector());
}

TEST(Activation, ClearErrors) {
  Tensor x = Tensor::zeros({2, 3}), y = Tensor::zeros({3, 2});
  try {
    ops::activation_forward(Activation::relu, 0.0f, x, y);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("activation_forward: output has shape [3, 2] but input "
                                         "has [2, 3]"),
              std::string::npos)
        << e.what();
  }
  Tensor y2 = Tensor::zeros({2, 3});
  EXPECT_THROW(ops::activation_forward(Activation::leaky_relu, -0.5f, x, y2), Error);
  Tensor xi = Tensor::zeros({2, 3}, DType::i32);
  EXPECT_THROW(ops::heaviside_forward(xi, y2, 0.5f), Error);
}

}  // namespace
}  // namespace ruche
