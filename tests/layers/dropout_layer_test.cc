// Dropout: the same mask for the same (seed, epoch, step, layer name), another for another step or
// name; the keep rate and scaling; test phase identity (copy or in place); backward replays the
// mask.
#include <gtest/gtest.h>

#include "engine/layers/layer_util.h"
#include "tests/layers/layer_harness.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::bind_layer;
using testing::error_of;
using testing::layer_param;

const char* kDrop = "name: 'drop1' type: 'Dropout' dropout_param { dropout_ratio: 0.25 }";

Tensor ones() {
  Tensor t = Tensor::empty(Shape{64, 64});
  t.fill(1.0f);
  return t;
}

std::vector<float> run(const char* text, StepContext ctx) {
  auto b = bind_layer(text, {ones()});
  b.ctx = ctx;
  b.forward();
  return b.io.top[0].to_vector();
}

TEST(DropoutLayer, SameContextSameMask) {
  StepContext ctx;
  ctx.seed = 9, ctx.epoch = 2, ctx.step = 17;
  const auto a = run(kDrop, ctx);
  EXPECT_EQ(a, run(kDrop, ctx));
  // The same layer object, called twice with the same context.
  auto b = bind_layer(kDrop, {ones()});
  b.ctx = ctx;
  b.forward();
  b.forward();
  EXPECT_EQ(b.io.top[0].to_vector(), a);

  StepContext next = ctx;
  next.step = 18;
  EXPECT_NE(run(kDrop, next), a);
  EXPECT_NE(run("name: 'drop2' type: 'Dropout' dropout_param { dropout_ratio: 0.25 }", ctx), a);
  StepContext reseeded = ctx;
  reseeded.seed = 10;
  EXPECT_NE(run(kDrop, reseeded), a);
}

TEST(DropoutLayer, KeepsAboutOneMinusPScaled) {
  const auto y = run(kDrop, StepContext{});
  int kept = 0;
  for (float v : y) {
    ASSERT_TRUE(v == 0.0f || v == 1.0f / 0.75f) << v;
    kept += v != 0.0f;
  }
  EXPECT_NEAR(kept / 4096.0, 0.75, 0.03);
}

TEST(DropoutLayer, StreamIdIsAStableHashOfTheName) {
  EXPECT_EQ(layers::stream_id_of("drop1"), layers::stream_id_of("drop1"));
  EXPECT_NE(layers::stream_id_of("drop1"), layers::stream_id_of("drop2"));
  EXPECT_LT(layers::stream_id_of("fc6/dropout"), 1u << 24);
}

TEST(DropoutLayer, TestPhaseIsTheIdentity) {
  auto b = bind_layer(kDrop, {testing::random_tensor(Shape{3, 4}, 1)});
  b.ctx.phase = Phase::test;
  b.forward();
  EXPECT_TENSORS_CLOSE(b.io.top[0], b.io.bottom[0], 0.0);
  b.io.top_diff[0] = testing::random_tensor(Shape{3, 4}, 2);
  b.backward();
  EXPECT_TENSORS_CLOSE(b.io.bottom_diff[0], b.io.top_diff[0], 0.0);
  // In place: nothing to copy.
  const Tensor before = b.io.bottom[0].clone();
  b.io.top[0] = b.io.bottom[0];
  b.forward();
  EXPECT_TENSORS_CLOSE(b.io.top[0], before, 0.0);
}

TEST(DropoutLayer, BackwardReplaysTheMaskInPlace) {
  auto b = bind_layer(kDrop, {ones()});
  EXPECT_TRUE(b.layer->in_place_ok());
  b.io.top[0] = b.io.bottom[0];
  b.forward();
  const auto y = b.io.top[0].to_vector();
  b.io.top_diff[0] = ones();
  b.io.bottom_diff[0] = b.io.top_diff[0];
  b.backward();
  EXPECT_EQ(b.io.bottom_diff[0].to_vector(), y);  // d(x * m / (1 - p)) = m / (1 - p)
}

TEST(DropoutLayer, Errors) {
  EXPECT_NE(
      error_of([] {
        create_layer(layer_param("name: 'd' type: 'Dropout' dropout_param { dropout_ratio: 1 }"));
      }).find("dropout_ratio must be in [0, 1)"),
      std::string::npos);
}

}  // namespace
}  // namespace ruche
