// BatchNorm: declarations (learnable first, then buffers), training and test forward against the
// ops, the running statistics and counter, gradients, frozen gamma, and use_global_stats.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

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

const char* kBn = "name: 'bn1' type: 'BatchNorm'";

TEST(BatchNormLayer, DeclaresLearnableThenBuffers) {
  auto layer = create_layer(layer_param(kBn));
  EXPECT_EQ(layer->reshape({Shape{2, 3, 4, 4}}, 0)[0], (Shape{2, 3, 4, 4}));
  const auto d = layer->param_decls();
  ASSERT_EQ(d.size(), 5u);
  const char* suffixes[] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
  const ParamRole roles[] = {ParamRole::norm_weight, ParamRole::norm_bias, ParamRole::buffer,
                             ParamRole::buffer, ParamRole::buffer};
  const float values[] = {1, 0, 0, 1, 0};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(d[i].suffix, suffixes[i]);
    EXPECT_EQ(d[i].role, roles[i]);
    EXPECT_EQ(d[i].filler.type(), "constant");
    EXPECT_EQ(d[i].filler.value(), values[i]);
  }
  EXPECT_EQ(d[0].shape, (Shape{3}));
  EXPECT_EQ(d[4].shape, (Shape{}));
  EXPECT_EQ(d[4].shape.numel(), 1);
  EXPECT_FALSE(layer->in_place_ok());
}

TEST(BatchNormLayer, ZeroInitAndNoAffine) {
  auto zero =
      create_layer(layer_param("name: 'b' type: 'BatchNorm' "
                               "batch_norm_param { zero_init: true }"));
  zero->reshape({Shape{4, 5}}, 0);
  EXPECT_EQ(zero->param_decls()[0].filler.value(), 0.0f);
  auto plain =
      create_layer(layer_param("name: 'b' type: 'BatchNorm' "
                               "batch_norm_param { affine: false }"));
  plain->reshape({Shape{4, 5}}, 0);
  const auto d = plain->param_decls();
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].suffix, "running_mean");
}

TEST(BatchNormLayer, Errors) {
  EXPECT_EQ(error_of([] {
              create_layer(layer_param(kBn))->reshape({Shape{2, 3, 4}}, 0);
            }),
            "BatchNorm: expected a 2-d input [N, C] or a 4-d input [N, C, H, W], got [2, 3, 4]");
  EXPECT_NE(error_of([] {
              create_layer(layer_param("name: 'b' type: 'BatchNorm' batch_norm_param { eps: 0 }"));
            }).find("eps must be positive"),
            std::string::npos);
}

TEST(BatchNormLayer, TrainingForwardUpdatesStatisticsAndCounter) {
  auto b = bind_layer(kBn, {random_tensor(Shape{4, 3, 2, 2}, 1)});
  // What the op gives on copies of the same state.
  Tensor y = Tensor::empty(Shape{4, 3, 2, 2});
  Tensor rm = b.io.params[2].clone(), rv = b.io.params[3].clone();
  Tensor sm = Tensor::empty(Shape{3}), sv = Tensor::empty(Shape{3});
  ops::batch_norm_forward_training(b.io.bottom[0], b.io.params[0], b.io.params[1], y, rm, rv, sm,
                                   sv, ops::BatchNormParams{});
  b.forward();
  EXPECT_TENSORS_CLOSE(b.io.top[0], y, 0.0);
  EXPECT_TENSORS_CLOSE(b.io.params[2], rm, 0.0);
  EXPECT_TENSORS_CLOSE(b.io.params[3], rv, 0.0);
  EXPECT_EQ(b.io.params[4].item(), 1.0f);
  b.forward();
  EXPECT_EQ(b.io.params[4].item(), 2.0f);
}

TEST(BatchNormLayer, TestPhaseUsesRunningStatistics) {
  auto b = bind_layer(kBn, {random_tensor(Shape{2, 3}, 2)});
  b.io.params[2].copy_from(Tensor::from_vector({0.5f, -1.0f, 2.0f}, Shape{3}));
  b.io.params[3].copy_from(Tensor::from_vector({1.0f, 4.0f, 0.25f}, Shape{3}));
  b.ctx.phase = Phase::test;
  b.forward();
  Tensor y = Tensor::empty(Shape{2, 3});
  ops::batch_norm_forward_inference(b.io.bottom[0], b.io.params[0], b.io.params[1], b.io.params[2],
                                    b.io.params[3], y, ops::BatchNormParams{});
  EXPECT_TENSORS_CLOSE(b.io.top[0], y, 0.0);
  EXPECT_EQ(b.io.params[4].item(), 0.0f);  // counted in training only
}

// Test phase (ruche visualize's saliency, PyTorch's eval mode): the running statistics are
// constants, so dx = dy * gamma / sqrt(running_var + eps).
TEST(BatchNormLayer, TestPhaseBackwardTakesRunningStatisticsAsConstants) {
  auto b = bind_layer(kBn, {random_tensor(Shape{2, 3, 2, 2}, 4)});
  b.io.params[0].copy_from(Tensor::from_vector({2.0f, -1.0f, 0.5f}, Shape{3}));
  b.io.params[2].copy_from(Tensor::from_vector({0.5f, -1.0f, 2.0f}, Shape{3}));
  b.io.params[3].copy_from(Tensor::from_vector({1.0f, 4.0f, 0.25f}, Shape{3}));
  b.ctx.phase = Phase::test;
  b.forward();
  const Tensor dy = random_tensor(Shape{2, 3, 2, 2}, 5);
  b.io.top_diff[0].copy_from(dy);
  b.backward();
  const float gamma[] = {2.0f, -1.0f, 0.5f}, var[] = {1.0f, 4.0f, 0.25f};
  std::vector<float> expected = dy.to_vector<float>();
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const std::size_t c = (i / 4) % 3;
    expected[i] *= gamma[c] / std::sqrt(var[c] + 1e-5f);
  }
  EXPECT_TENSORS_CLOSE(b.io.bottom_diff[0], Tensor::from_vector(expected, Shape{2, 3, 2, 2}), 1e-6);
}

// Caffe's use_global_stats (a frozen BN): training normalises with the running statistics as test
// does, leaves them and the counter alone, and takes them as constants in backward, where gamma
// and beta still get their gradients.
TEST(BatchNormLayer, UseGlobalStatsInTraining) {
  const char* frozen = "name: 'bn1' type: 'BatchNorm' batch_norm_param { use_global_stats: true }";
  auto b = bind_layer(frozen, {random_tensor(Shape{4, 3, 2, 2}, 7)});
  b.io.params[0].copy_from(Tensor::from_vector({2.0f, -1.0f, 0.5f}, Shape{3}));
  b.io.params[2].copy_from(Tensor::from_vector({0.5f, -1.0f, 2.0f}, Shape{3}));
  b.io.params[3].copy_from(Tensor::from_vector({1.0f, 4.0f, 0.25f}, Shape{3}));
  b.forward();
  Tensor y = Tensor::empty(Shape{4, 3, 2, 2});
  ops::batch_norm_forward_inference(b.io.bottom[0], b.io.params[0], b.io.params[1], b.io.params[2],
                                    b.io.params[3], y, ops::BatchNormParams{});
  EXPECT_TENSORS_CLOSE(b.io.top[0], y, 0.0);
  EXPECT_EQ(b.io.params[2].to_vector(), (std::vector<float>{0.5f, -1.0f, 2.0f}));
  EXPECT_EQ(b.io.params[3].to_vector(), (std::vector<float>{1.0f, 4.0f, 0.25f}));
  EXPECT_EQ(b.io.params[4].item(), 0.0f);
  testing::expect_layer_gradients(b, {0});
}

TEST(BatchNormLayer, Gradients) {
  auto b = bind_layer(kBn, {random_tensor(Shape{3, 2, 3, 3}, 3)});
  testing::expect_layer_gradients(b, {0});
}

TEST(BatchNormLayer, GradientsWithoutAffine) {
  auto b = bind_layer("name: 'b' type: 'BatchNorm' batch_norm_param { affine: false }",
                      {random_tensor(Shape{5, 4}, 4)});
  testing::expect_layer_gradients(b, {0});
}

TEST(BatchNormLayer, FrozenGammaAndNoInputGradient) {
  auto b = bind_layer(kBn, {random_tensor(Shape{4, 3, 2, 2}, 5)});
  b.io.top_diff[0] = random_tensor(Shape{4, 3, 2, 2}, 6);
  b.forward();
  b.backward();
  const Tensor dbeta = b.io.param_grads[1].clone();
  b.io.bottom_diff[0] = Tensor();
  b.io.param_grads[0] = Tensor();
  b.io.param_grads[1].zero();
  b.backward();
  EXPECT_TENSORS_CLOSE(b.io.param_grads[1], dbeta, 1e-6);
}

}  // namespace
}  // namespace ruche
