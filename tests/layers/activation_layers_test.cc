// ReLU (and leaky), Sigmoid, TanH: hand-computed values, in place, backward against the op.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/ops.h"
#include "tests/layers/layer_harness.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::bind_layer;
using testing::error_of;
using testing::layer_param;
using testing::random_tensor;

Tensor values() { return Tensor::from_vector({-2.0f, -0.5f, 0.0f, 1.5f}, Shape{2, 2}); }

TEST(ActivationLayers, ForwardValues) {
  auto relu = bind_layer("name: 'r' type: 'ReLU'", {values()});
  relu.forward();
  EXPECT_EQ(relu.io.top[0].to_vector(), (std::vector<float>{0, 0, 0, 1.5f}));
  auto leaky = bind_layer("name: 'r' type: 'ReLU' relu_param { negative_slope: 0.1 }", {values()});
  leaky.forward();
  EXPECT_TENSORS_CLOSE(leaky.io.top[0],
                       Tensor::from_vector({-0.2f, -0.05f, 0.0f, 1.5f}, Shape{2, 2}), 1e-7);
  auto sig = bind_layer("name: 's' type: 'Sigmoid'", {values()});
  sig.forward();
  const auto s = sig.io.top[0].to_vector();
  EXPECT_NEAR(s[0], 1.0 / (1.0 + std::exp(2.0)), 1e-6);
  EXPECT_NEAR(s[2], 0.5, 1e-7);
  auto th = bind_layer("name: 't' type: 'TanH'", {values()});
  th.forward();
  EXPECT_NEAR(th.io.top[0].to_vector()[3], std::tanh(1.5), 1e-6);
}

TEST(ActivationLayers, InPlaceForwardAndBackward) {
  for (const char* type : {"ReLU", "Sigmoid", "TanH"}) {
    SCOPED_TRACE(type);
    const std::string text = std::string("name: 'a' type: '") + type + "'";
    auto ref = bind_layer(text, {random_tensor(Shape{3, 5}, 1)});
    ref.io.top_diff[0] = random_tensor(Shape{3, 5}, 2);
    ref.forward();
    ref.backward();
    EXPECT_TRUE(ref.layer->in_place_ok());

    // The Net's in-place binding: top is bottom, bottom_diff is top_diff.
    auto in = bind_layer(text, {random_tensor(Shape{3, 5}, 1)});
    in.io.top[0] = in.io.bottom[0];
    in.io.top_diff[0] = random_tensor(Shape{3, 5}, 2);
    in.io.bottom_diff[0] = in.io.top_diff[0];
    in.forward();
    in.backward();
    EXPECT_TENSORS_CLOSE(in.io.top[0], ref.io.top[0], 0.0);
    EXPECT_TENSORS_CLOSE(in.io.bottom_diff[0], ref.io.bottom_diff[0], 0.0);
  }
}

TEST(ActivationLayers, BackwardIsTheOp) {
  auto b = bind_layer("name: 'r' type: 'ReLU' relu_param { negative_slope: 0.2 }",
                      {random_tensor(Shape{4, 6}, 3)});
  b.io.top_diff[0] = random_tensor(Shape{4, 6}, 4);
  b.forward();
  b.backward();
  Tensor dx = Tensor::empty(Shape{4, 6});
  ops::activation_backward(ops::Activation::leaky_relu, 0.2f, b.io.top[0], b.io.top_diff[0], dx);
  EXPECT_TENSORS_CLOSE(b.io.bottom_diff[0], dx, 0.0);
  // No gradient wanted: backward does nothing.
  b.io.bottom_diff[0] = Tensor();
  b.backward();
}

TEST(ActivationLayers, Errors) {
  EXPECT_NE(error_of([] {
              create_layer(layer_param("name: 'r' type: 'ReLU' relu_param { negative_slope: -1 }"));
            }).find("negative_slope must be >= 0"),
            std::string::npos);
  EXPECT_EQ(
      error_of([] { create_layer(layer_param("name: 's' type: 'Sigmoid'"))->reshape({}, 0); }),
      "Sigmoid: expected 1 bottom, got 0");
}

}  // namespace
}  // namespace ruche
