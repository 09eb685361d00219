// Eltwise (SUM, coeff, PROD, MAX), Flatten, Softmax and Input: shapes, errors, forward values,
// gradients.
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

// Caffe's three operations, forward against values worked by hand and backward against finite
// differences; with coeff, a Net-shared top gradient is scaled only after the others read it.
TEST(EltwiseLayer, CoeffProdAndMax) {
  const std::vector<Tensor> xs = {Tensor::from_vector({1, -2, 3}, Shape{3}),
                                  Tensor::from_vector({4, 5, -6}, Shape{3}),
                                  Tensor::from_vector({-1, 7, 2}, Shape{3})};
  auto sum =
      bind_layer("name: 's' type: 'Eltwise' eltwise_param { coeff: 1 coeff: -0.5 coeff: 2 }", xs);
  sum.forward();
  EXPECT_EQ(sum.io.top[0].to_vector(), (std::vector<float>{-3, 9.5, 10}));
  auto prod = bind_layer("name: 'p' type: 'Eltwise' eltwise_param { operation: PROD }", xs);
  prod.forward();
  EXPECT_EQ(prod.io.top[0].to_vector(), (std::vector<float>{-4, -70, -36}));
  auto max = bind_layer("name: 'm' type: 'Eltwise' eltwise_param { operation: MAX }", xs);
  max.forward();
  EXPECT_EQ(max.io.top[0].to_vector(), (std::vector<float>{4, 7, 3}));
  max.io.top_diff[0] = Tensor::from_vector({10, 20, 30}, Shape{3});
  max.backward();
  EXPECT_EQ(max.io.bottom_diff[0].to_vector(), (std::vector<float>{0, 0, 30}));
  EXPECT_EQ(max.io.bottom_diff[1].to_vector(), (std::vector<float>{10, 0, 0}));
  EXPECT_EQ(max.io.bottom_diff[2].to_vector(), (std::vector<float>{0, 20, 0}));

  for (const char* p : {"name: 's' type: 'Eltwise' eltwise_param { coeff: 0.5 coeff: -3 coeff: 2 }",
                        "name: 'p' type: 'Eltwise' eltwise_param { operation: PROD }",
                        "name: 'm' type: 'Eltwise' eltwise_param { operation: MAX }"}) {
    auto b =
        bind_layer(p, {random_tensor(Shape{2, 3, 2, 2}, 1), random_tensor(Shape{2, 3, 2, 2}, 2),
                       random_tensor(Shape{2, 3, 2, 2}, 3)});
    testing::expect_layer_gradients(b, {0, 1, 2});
  }
  auto shared = bind_layer("name: 's' type: 'Eltwise' eltwise_param { coeff: 2 coeff: 3 }",
                           {random_tensor(Shape{4}, 1), random_tensor(Shape{4}, 2)});
  const Tensor dy = random_tensor(Shape{4}, 4);
  shared.io.top_diff[0] = dy.clone();
  shared.io.bottom_diff[0] = shared.io.top_diff[0];  // the Net shared the top's gradient
  shared.backward();
  Tensor want0 = dy.clone(), want1 = dy.clone();
  ops::scale(2.0f, want0);
  ops::scale(3.0f, want1);
  EXPECT_TENSORS_CLOSE(shared.io.bottom_diff[0], want0, 0.0);
  EXPECT_TENSORS_CLOSE(shared.io.bottom_diff[1], want1, 0.0);
  EXPECT_EQ(error_of([] {
              create_layer(layer_param("name: 's' type: 'Eltwise' eltwise_param { coeff: 1 }"))
                  ->reshape({Shape{2}, Shape{2}}, 0);
            }),
            "Eltwise: 1 coeff for 2 bottoms; give one per bottom");
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
