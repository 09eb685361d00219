// Eltwise SUM, Flatten, Softmax and Input: shapes, errors, forward values, gradients.
#include <gtest/gtest.h>

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

const char* kSum = "name: 'add' type: 'Eltwise'";

TEST(EltwiseLayer, SumsTwoOrMore) {
  auto b = bind_layer(
      kSum, {Tensor::from_vector({1, 2}, Shape{2}), Tensor::from_vector({10, 20}, Shape{2}),
             Tensor::from_vector({100, 200}, Shape{2})});
  EXPECT_EQ(b.layer->num_bottoms(), -1);
  b.forward();
  EXPECT_EQ(b.io.top[0].to_vector(), (std::vector<float>{111, 222}));
}

TEST(EltwiseLayer, Errors) {
  EXPECT_EQ(error_of([] {
              create_layer(layer_param(kSum))->reshape({Shape{2, 3}}, 0);
            }),
            "Eltwise: expected 2 or more bottoms, got 1");
  EXPECT_EQ(error_of([] {
              create_layer(layer_param(kSum))->reshape({Shape{2, 3}, Shape{2, 4}}, 0);
            }),
            "Eltwise: every bottom must have the shape of bottom 0 [2, 3], bottom 1 is [2, 4]");
}

TEST(EltwiseLayer, Gradients) {
  auto b =
      bind_layer(kSum, {random_tensor(Shape{2, 3, 2, 2}, 1), random_tensor(Shape{2, 3, 2, 2}, 2)});
  testing::expect_layer_gradients(b, {0, 1});
}

TEST(EltwiseLayer, BackwardSkipsAliasedAndUndefinedDiffs) {
  auto b = bind_layer(
      kSum, {random_tensor(Shape{4}, 1), random_tensor(Shape{4}, 2), random_tensor(Shape{4}, 3)});
  b.io.top_diff[0] = random_tensor(Shape{4}, 4);
  b.io.bottom_diff[0] = b.io.top_diff[0];  // the Net shared the top's gradient
  b.io.bottom_diff[1] = Tensor();          // no gradient needed
  b.backward();
  EXPECT_TENSORS_CLOSE(b.io.bottom_diff[0], b.io.top_diff[0], 0.0);
  EXPECT_TENSORS_CLOSE(b.io.bottom_diff[2], b.io.top_diff[0], 0.0);
}

TEST(FlattenLayer, ShapesCopiesAndGradient) {
  auto layer = create_layer(layer_param("name: 'f' type: 'Flatten'"));
  EXPECT_EQ(layer->reshape({Shape{2, 3, 4, 5}}, 0)[0], (Shape{2, 60}));
  auto axis2 = create_layer(layer_param("name: 'f' type: 'Flatten' flatten_param { axis: 2 }"));
  EXPECT_EQ(axis2->reshape({Shape{2, 3, 4, 5}}, 0)[0], (Shape{2, 3, 20}));
  EXPECT_NE(error_of([&] { layer->reshape({Shape{6}}, 0); }).find("Flatten: axis 1 is outside"),
            std::string::npos);

  auto b = bind_layer("name: 'f' type: 'Flatten'", {random_tensor(Shape{2, 3, 2, 2}, 1)});
  b.forward();
  EXPECT_EQ(b.io.top[0].to_vector(), b.io.bottom[0].to_vector());
  testing::expect_layer_gradients(b, {0});
}

TEST(SoftmaxLayer, ForwardAndGradients) {
  auto b = bind_layer("name: 's' type: 'Softmax'", {random_tensor(Shape{3, 4}, 1, -2.0f, 2.0f)});
  b.forward();
  Tensor y = Tensor::empty(Shape{3, 4});
  ops::softmax_forward(b.io.bottom[0], y);
  EXPECT_TENSORS_CLOSE(b.io.top[0], y, 0.0);
  testing::expect_layer_gradients(b, {0});
  // Any axis of any rank is taken since issue 19 (Caffe's Softmax); one outside the input is not.
  EXPECT_EQ(error_of([] {
              create_layer(layer_param("name: 's' type: 'Softmax' softmax_param { axis: 3 }"))
                  ->reshape({Shape{2, 3, 4}}, 0);
            }),
            "Softmax: axis 3 is outside [2, 3, 4]");
}

TEST(InputLayer, ReturnsTheShapesTheNetPasses) {
  auto layer = create_layer(layer_param("name: 'data' type: 'Input' top: 'data' top: 'label'"));
  EXPECT_EQ(layer->num_bottoms(), 0);
  EXPECT_EQ(layer->num_tops(), -1);
  auto tops = layer->reshape({Shape{8, 1, 28, 28}, Shape{8}}, 10);
  ASSERT_EQ(tops.size(), 2u);
  EXPECT_EQ(tops[0], (Shape{8, 1, 28, 28}));
  EXPECT_EQ(tops[1], (Shape{8}));
  tops = layer->reshape({Shape{8, 1, 28, 28}}, 10);  // the label shape defaults to [B]
  ASSERT_EQ(tops.size(), 2u);
  EXPECT_EQ(tops[1], (Shape{8}));

  auto data_only = create_layer(
      layer_param("name: 'data' type: 'Input' top: 'data' input_param { dim: 3 dim: 32 dim: 32 }"));
  EXPECT_EQ(data_only->reshape({Shape{4, 3, 32, 32}, Shape{4}}, 0).size(), 1u);
  EXPECT_EQ(error_of([&] {
              data_only->reshape({Shape{4, 1, 28, 28}}, 0);
            }),
            "Input: input_param dims [3, 32, 32] do not match the data's sample shape [1, 28, 28]");
  EXPECT_NE(error_of([&] { data_only->reshape({}, 0); }).find("Input: the Net passes"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              create_layer(layer_param("name: 'data' type: 'Input'"));
            }).find("Input: expected 1 or 2 tops"),
            std::string::npos);
}

}  // namespace
}  // namespace ruche
