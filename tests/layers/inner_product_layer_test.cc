// InnerProduct: flattening bottoms, num_output from the number of classes, fillers, errors,
// forward against linear_forward, gradients.
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

const char* kFc = "name: 'fc' type: 'InnerProduct' inner_product_param { num_output: 5 }";

TEST(InnerProductLayer, ShapesAndParams) {
  auto layer = create_layer(layer_param(kFc));
  EXPECT_EQ(layer->reshape({Shape{8, 2, 3, 4}}, 10)[0], (Shape{8, 5}));
  const auto d = layer->param_decls();
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].shape, (Shape{5, 24}));
  EXPECT_EQ(d[0].fan_in, 24);
  EXPECT_EQ(d[0].fan_out, 5);
  EXPECT_FLOAT_EQ(d[0].filler.max(), 1.0f / std::sqrt(24.0f));
  EXPECT_EQ(d[1].shape, (Shape{5}));
  EXPECT_EQ(d[1].role, ParamRole::bias);
  EXPECT_FLOAT_EQ(d[1].filler.min(), -1.0f / std::sqrt(24.0f));
  EXPECT_DOUBLE_EQ(layer->forward_flops(), 8.0 * 24 * 5);
}

TEST(InnerProductLayer, ClassifierTakesTheNumberOfClasses) {
  auto layer = create_layer(layer_param("name: 'fc' type: 'InnerProduct'"));
  EXPECT_EQ(layer->reshape({Shape{4, 7}}, 10)[0], (Shape{4, 10}));
  EXPECT_NE(error_of([&] {
              layer->reshape({Shape{4, 7}}, 0);
            }).find("InnerProduct: num_output is 0"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { layer->reshape({Shape{7}}, 10); }),
            "InnerProduct: expected an input [N, features...], got [7]");
}

TEST(InnerProductLayer, ForwardIsLinearOnTheFlattenedInput) {
  auto b = bind_layer(kFc, {random_tensor(Shape{3, 2, 2, 2}, 1)});
  b.forward();
  Tensor y = Tensor::empty(Shape{3, 5});
  ops::linear_forward(b.io.bottom[0].view(Shape{3, 8}), b.io.params[0], b.io.params[1], y);
  EXPECT_TENSORS_CLOSE(b.io.top[0], y, 0.0);
}

TEST(InnerProductLayer, Gradients) {
  auto b = bind_layer(kFc, {random_tensor(Shape{3, 2, 2, 2}, 2)});
  testing::expect_layer_gradients(b, {0});
  auto nobias = bind_layer(
      "name: 'fc' type: 'InnerProduct' inner_product_param { num_output: 3 bias_term: false }",
      {random_tensor(Shape{4, 6}, 3)});
  ASSERT_EQ(nobias.decls.size(), 1u);
  testing::expect_layer_gradients(nobias, {0});
}

TEST(InnerProductLayer, FrozenWeightBesideTrainedBias) {
  auto b = bind_layer(kFc, {random_tensor(Shape{3, 4}, 4)});
  b.io.top_diff[0] = random_tensor(Shape{3, 5}, 5);
  b.forward();
  b.backward();
  const Tensor db = b.io.param_grads[1].clone();
  b.io.param_grads[0] = Tensor();
  b.io.bottom_diff[0] = Tensor();
  b.io.param_grads[1].zero();
  b.backward();
  EXPECT_TENSORS_CLOSE(b.io.param_grads[1], db, 0.0);
}

}  // namespace
}  // namespace ruche
