// Dropout: the mask is the Philox stream's (uniform >= p), about p of it dropped, kept values
// scaled by 1 / (1 - p), reproducible per stream and independent of the thread count; backward
// and finite differences; p's range.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

RngStream stream_for(std::uint32_t step, std::uint32_t layer = 3) {
  return RngStream{2024, RngPurpose::dropout, 0, step, layer};
}

struct Result {
  Tensor y, mask;
};

Result run_dropout(const Tensor& x, float p, const RngStream& s) {
  Result r{Tensor::empty(x.shape()), Tensor::empty(x.shape(), DType::u8)};
  ops::dropout_forward(x, r.y, r.mask, p, s);
  return r;
}

TEST(Dropout, MaskFollowsTheStreamAndScalesKeptValues) {
  const float p = 0.3f;
  const Tensor x = testing::random_tensor({200, 501}, 1);  // odd count: a partial last block
  const RngStream s = stream_for(5);
  const Result r = run_dropout(x, p, s);
  const auto vx = x.to_vector(), vy = r.y.to_vector();
  const auto vm = r.mask.to_vector<std::uint8_t>();
  std::int64_t dropped = 0;
  for (std::size_t i = 0; i < vx.size(); ++i) {
    const bool keep = rng_uniform(s, i) >= p;
    ASSERT_EQ(vm[i], keep ? 1 : 0) << "element " << i;
    if (keep) {
      ASSERT_FLOAT_EQ(vy[i], vx[i] / (1.0f - p)) << "element " << i;
    } else {
      ASSERT_EQ(vy[i], 0.0f) << "element " << i;
      ++dropped;
    }
  }
  // 100k Bernoulli(0.3) draws: the fraction's standard deviation is 0.0015.
  EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(vx.size()), p, 0.01);
}

TEST(Dropout, SameStreamSameMaskOtherStepOtherMask) {
  const Tensor x = testing::random_tensor({64, 512}, 2);
  const auto a = run_dropout(x, 0.5f, stream_for(7)).mask.to_vector<std::uint8_t>();
  const auto b = run_dropout(x, 0.5f, stream_for(7)).mask.to_vector<std::uint8_t>();
  const auto next_step = run_dropout(x, 0.5f, stream_for(8)).mask.to_vector<std::uint8_t>();
  const auto other_layer = run_dropout(x, 0.5f, stream_for(7, 4)).mask.to_vector<std::uint8_t>();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, next_step);
  EXPECT_NE(a, other_layer);
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.size(); ++i) same += a[i] == next_step[i];
  EXPECT_NEAR(static_cast<double>(same) / static_cast<double>(a.size()), 0.5, 0.02);
}

TEST(Dropout, MaskDoesNotDependOnThreadCount) {
  const Tensor x = testing::random_tensor({128, 1000}, 3);
  const int threads = ops::num_threads();
  ops::set_num_threads(1);
  const Result one = run_dropout(x, 0.2f, stream_for(1));
  ops::set_num_threads(4);
  const Result four = run_dropout(x, 0.2f, stream_for(1));
  ops::set_num_threads(threads);
  EXPECT_EQ(one.mask.to_vector<std::uint8_t>(), four.mask.to_vector<std::uint8_t>());
  EXPECT_EQ(one.y.to_vector(), four.y.to_vector());
}

TEST(Dropout, ZeroProbabilityKeepsAll) {
  const Tensor x = testing::random_tensor({3, 7}, 4);
  const Result r = run_dropout(x, 0.0f, stream_for(0));
  EXPECT_EQ(r.y.to_vector(), x.to_vector());
  for (std::uint8_t m : r.mask.to_vector<std::uint8_t>()) EXPECT_EQ(m, 1);
}

TEST(Dropout, BackwardAppliesTheMaskAndScale) {
  const float p = 0.4f;
  const Tensor x = testing::random_tensor({9, 13}, 5);
  const Result r = run_dropout(x, p, stream_for(2));
  const Tensor dy = testing::random_tensor({9, 13}, 6);
  Tensor dx = Tensor::empty(dy.shape());
  ops::dropout_backward(dy, r.mask, dx, p);
  const auto vdy = dy.to_vector(), vdx = dx.to_vector();
  const auto vm = r.mask.to_vector<std::uint8_t>();
  for (std::size_t i = 0; i < vdy.size(); ++i) {
    EXPECT_FLOAT_EQ(vdx[i], vm[i] ? vdy[i] / (1.0f - p) : 0.0f);
  }
}

TEST(Dropout, GradientMatchesFiniteDifferences) {
  const Shape shape{5, 11};
  const float p = 0.35f;
  const RngStream s = stream_for(9);
  auto forward = [&](std::vector<Tensor>& in) { return run_dropout(in[0], p, s).y; };
  auto backward = [&](std::vector<Tensor>& in, const Tensor& dy) {
    const Result r = run_dropout(in[0], p, s);
    Tensor dx = Tensor::empty(shape);
    ops::dropout_backward(dy, r.mask, dx, p);
    return std::vector<Tensor>{dx};
  };
  testing::expect_gradients_match({testing::random_tensor(shape, 7)}, forward, backward, {0});
}

TEST(Dropout, ProbabilityOutOfRangeIsAnError) {
  const Tensor x = Tensor::zeros({4});
  for (float p : {1.0f, -0.1f, 1.5f, NAN}) {
    try {
      run_dropout(x, p, stream_for(0));
      ADD_FAILURE() << "p = " << p << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("dropout_forward: drop probability must be in [0, 1)"),
                std::string::npos)
          << e.what();
    }
  }
  Tensor y = Tensor::empty({4}), mask_f32 = Tensor::empty({4});
  EXPECT_THROW(ops::dropout_forward(x, y, mask_f32, 0.5f, stream_for(0)), Error);
}

}  // namespace
}  // namespace ruche
