// SoftmaxWithLoss, EuclideanLoss, L1Loss, SmoothL1Loss and SigmoidCrossEntropyLoss: shapes,
// errors, hand-computed values, the probabilities the trainer reads, gradients (for a loss
// gradient of 1).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

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

Tensor labels(const std::vector<std::int32_t>& v) {
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

TEST(PointwiseLossLayers, ValuesAndGradients) {
  const Tensor pred = Tensor::from_vector({1, 2, 3.5f, 4}, Shape{2, 2});
  const Tensor target = Tensor::from_vector({1, 0, 3, 7}, Shape{2, 2});  // d = 0, 2, 0.5, -3
  auto l1 = bind_layer("name: 'l1' type: 'L1Loss'", {pred, target});
  l1.forward();
  EXPECT_FLOAT_EQ(l1.io.top[0].item(), 5.5f / 4);
  l1.backward();
  EXPECT_EQ(l1.io.bottom_diff[0].to_vector(), (std::vector<float>{0, 0.25f, 0.25f, -0.25f}));
  EXPECT_EQ(l1.io.bottom_diff[1].to_vector(), (std::vector<float>{0, -0.25f, -0.25f, 0.25f}));

  auto huber = bind_layer("name: 'h' type: 'SmoothL1Loss'", {pred, target});
  huber.forward();  // 0, 2 - 0.5, 0.5 * 0.25, 3 - 0.5
  EXPECT_FLOAT_EQ(huber.io.top[0].item(), (1.5f + 0.125f + 2.5f) / 4);
  huber.backward();
  EXPECT_EQ(huber.io.bottom_diff[0].to_vector(), (std::vector<float>{0, 0.25f, 0.125f, -0.25f}));

  const Tensor z = Tensor::from_vector({0, 0, 2, -2}, Shape{2, 2});
  const Tensor t = Tensor::from_vector({0, 1, 1, 0}, Shape{2, 1, 2});  // one count per sample
  auto bce = bind_layer("name: 'b' type: 'SigmoidCrossEntropyLoss'", {z, t});
  bce.io.bottom_diff[1] = Tensor();  // labels get no gradient in a Net
  bce.forward();
  EXPECT_NEAR(bce.io.top[0].item(), (2 * std::log(2.0) + 2 * std::log1p(std::exp(-2.0))) / 4, 1e-7);
  bce.backward();
  const double s2 = 1 / (1 + std::exp(-2.0));
  const std::vector<float> d = bce.io.bottom_diff[0].to_vector();
  const double expected[] = {0.125, -0.125, (s2 - 1) / 4, (1 - s2) / 4};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(d[static_cast<std::size_t>(i)], expected[i], 1e-7);

  for (const char* text : {"name: 'l1' type: 'L1Loss'", "name: 'h' type: 'SmoothL1Loss'",
                           "name: 'b' type: 'SigmoidCrossEntropyLoss'"}) {
    SCOPED_TRACE(text);
    auto r = bind_layer(text, {random_tensor(Shape{3, 4}, 5), random_tensor(Shape{3, 4}, 6)});
    const bool bce_layer = std::string(text).find("Sigmoid") != std::string::npos;
    if (bce_layer) r.io.bottom_diff[1] = Tensor();
    testing::expect_layer_gradients(r, bce_layer ? std::vector<int>{0} : std::vector<int>{0, 1},
                                    /*loss_layer=*/true);
    EXPECT_NE(error_of([&] {
                create_layer(layer_param(text))->reshape({Shape{2, 2}, Shape{4}}, 0);
              }).find("one batch and one count per sample"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace ruche
