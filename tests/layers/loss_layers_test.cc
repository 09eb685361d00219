// SoftmaxWithLoss and EuclideanLoss: shapes, errors, hand-computed values, the probabilities the
// trainer reads, gradients (for a loss gradient of 1).
#include <gtest/gtest.h>

#include <cmath>

#include "engine/layers/softmax_loss_layer.h"
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

const char* kCe = "name: 'loss' type: 'SoftmaxWithLoss'";

Tensor labels(std::vector<std::int32_t> v) {
  const auto n = static_cast<std::int64_t>(v.size());
  return Tensor::from_vector(v, Shape{n});
}

TEST(SoftmaxWithLossLayer, ShapesAndErrors) {
  auto layer = create_layer(layer_param(kCe));
  EXPECT_EQ(layer->num_bottoms(), 2);
  EXPECT_EQ(layer->reshape({Shape{4, 10}, Shape{4}}, 10)[0], (Shape{1}));
  EXPECT_EQ(layer->reshape({Shape{4, 10, 1, 1}, Shape{4}}, 10)[0], (Shape{1}));
  EXPECT_EQ(error_of([&] {
              layer->reshape({Shape{4, 10}, Shape{5}}, 10);
            }),
            "SoftmaxWithLoss: expected labels [4] (bottom 1) for logits [4, 10], got [5]");
  EXPECT_EQ(error_of([&] {
              layer->reshape({Shape{4, 10, 3, 3}, Shape{4}}, 10);
            }),
            "SoftmaxWithLoss: expected logits [N, C] (bottom 0), got [4, 10, 3, 3]");
  auto weighted = create_layer(layer_param(
      "name: 'loss' type: 'SoftmaxWithLoss' loss_param { class_weight: 1 class_weight: 2 }"));
  EXPECT_EQ(error_of([&] {
              weighted->reshape({Shape{4, 3}, Shape{4}}, 3);
            }),
            "SoftmaxWithLoss: loss_param.class_weight has 2 entries but there are 3 classes; give "
            "one weight per class");
}

TEST(SoftmaxWithLossLayer, UniformLogitsGiveLogC) {
  auto b = bind_layer(kCe, {Tensor::zeros(Shape{2, 4}), labels({1, 3})});
  b.forward();
  EXPECT_NEAR(b.io.top[0].item(), std::log(4.0), 1e-6);
  const auto& layer = dynamic_cast<const SoftmaxWithLossLayer&>(*b.layer);
  for (float p : layer.probabilities().to_vector()) EXPECT_FLOAT_EQ(p, 0.25f);
}

TEST(SoftmaxWithLossLayer, MatchesTheOpWithSmoothingAndWeights) {
  const char* text =
      "name: 'loss' type: 'SoftmaxWithLoss' loss_param { label_smoothing: 0.1 "
      "class_weight: 1 class_weight: 2 class_weight: 0.5 }";
  auto b = bind_layer(text, {random_tensor(Shape{5, 3}, 1, -2.0f, 2.0f), labels({0, 1, 2, 1, 0})});
  b.forward();
  ops::CrossEntropyParams p;
  p.label_smoothing = 0.1f;
  p.class_weights = Tensor::from_vector({1.0f, 2.0f, 0.5f}, Shape{3});
  Tensor probs = Tensor::empty(Shape{5, 3}), loss = Tensor::empty(Shape{1});
  ops::softmax_cross_entropy_forward(b.io.bottom[0], b.io.bottom[1], probs, loss, p);
  EXPECT_FLOAT_EQ(b.io.top[0].item(), loss.item());
  testing::expect_layer_gradients(b, {0}, /*loss_layer=*/true);
}

TEST(SoftmaxWithLossLayer, Gradients) {
  auto b = bind_layer(kCe, {random_tensor(Shape{4, 6}, 2, -2.0f, 2.0f), labels({5, 0, 2, 2})});
  testing::expect_layer_gradients(b, {0}, /*loss_layer=*/true);
  EXPECT_FALSE(b.io.bottom_diff[1].defined());  // labels get no gradient
}

TEST(EuclideanLossLayer, ValueAndGradients) {
  const char* text = "name: 'mse' type: 'EuclideanLoss'";
  auto b = bind_layer(text, {Tensor::from_vector({1, 2, 3, 4}, Shape{2, 2}),
                             Tensor::from_vector({1, 0, 3, 7}, Shape{2, 2})});
  b.forward();
  EXPECT_FLOAT_EQ(b.io.top[0].item(), (4.0f + 9.0f) / 4.0f);
  b.backward();
  EXPECT_EQ(b.io.bottom_diff[0].to_vector(), (std::vector<float>{0, 1, 0, -1.5f}));
  EXPECT_EQ(b.io.bottom_diff[1].to_vector(), (std::vector<float>{0, -1, 0, 1.5f}));

  auto r = bind_layer(text, {random_tensor(Shape{3, 4}, 3), random_tensor(Shape{3, 4}, 4)});
  testing::expect_layer_gradients(r, {0, 1}, /*loss_layer=*/true);
  EXPECT_EQ(error_of([&] {
              create_layer(layer_param(text))->reshape({Shape{2, 2}, Shape{4}}, 0);
            }),
            "EuclideanLoss: expected the prediction and the target to have one batch and one "
            "count per sample, got [2, 2] and [4]");
  // Caffe's rule: a flat [B, 4] prediction meets a [B, 1, 2, 2] target (an autoencoder's).
  EXPECT_EQ(create_layer(layer_param(text))->reshape({Shape{2, 4}, Shape{2, 1, 2, 2}}, 0)[0],
            Shape{1});
}

}  // namespace
}  // namespace ruche
