// upsample2d: PyTorch references (nearest and bilinear, align_corners both ways, by scale factor
// and by size, up and down), finite-difference gradients, and the argument errors.
#include <gtest/gtest.h>

#include <string>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::error_of;
using testing::random_tensor;
using testing::reference;

ops::UpsampleParams params_of(const std::string& c) {
  const auto v = reference(c, "params").to_vector<std::int32_t>();
  const auto s = reference(c, "scales").to_vector<float>();
  ops::UpsampleParams p;
  p.mode = v[0] == 1 ? ops::UpsampleMode::bilinear : ops::UpsampleMode::nearest;
  p.align_corners = v[1] != 0;
  p.scale_h = s[0];
  p.scale_w = s[1];
  return p;
}

class UpsampleReference : public ::testing::TestWithParam<std::string> {};

TEST_P(UpsampleReference, MatchesTorch) {
  const std::string c = GetParam();
  const ops::UpsampleParams p = params_of(c);
  const Tensor x = reference(c, "x"), dy = reference(c, "dy"), y_ref = reference(c, "y");
  Tensor y = Tensor::empty(y_ref.shape());
  y.fill(123.0f);
  ops::upsample2d_forward(x, y, p);
  EXPECT_TENSORS_CLOSE(y, y_ref, 1e-6);
  Tensor dx = Tensor::empty(x.shape());
  dx.fill(123.0f);  // overwritten, never added to
  ops::upsample2d_backward(dy, dx, p);
  EXPECT_TENSORS_CLOSE(dx, reference(c, "dx"), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Torch, UpsampleReference,
                         ::testing::Values("upsample_nearest_x2", "upsample_nearest_x3_x2",
                                           "upsample_nearest_frac", "upsample_nearest_size",
                                           "upsample_nearest_down", "upsample_bilinear_x2",
                                           "upsample_bilinear_x2_ac", "upsample_bilinear_frac",
                                           "upsample_bilinear_frac_ac", "upsample_bilinear_size",
                                           "upsample_bilinear_size_ac", "upsample_bilinear_down",
                                           "upsample_bilinear_one"));

// Nearest upsampling by 2 copies each input into a 2x2 block; its gradient sums the block.
TEST(Upsample2d, NearestByTwoRepeatsAndSums) {
  const Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor y = Tensor::empty({1, 1, 4, 4});
  ops::upsample2d_forward(x, y, ops::UpsampleParams{});
  EXPECT_EQ(y.to_vector<float>(),
            (std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
  Tensor dx = Tensor::empty({1, 1, 2, 2});
  ops::upsample2d_backward(y, dx, ops::UpsampleParams{});
  EXPECT_EQ(dx.to_vector<float>(), (std::vector<float>{4, 8, 12, 16}));
}

TEST(Upsample2d, GradientsMatchFiniteDifferences) {
  struct Case {
    Shape x, y;
    ops::UpsampleMode mode;
    bool align_corners;
    float scale;
  };
  const Case cases[] = {
      {{2, 3, 3, 4}, {2, 3, 6, 8}, ops::UpsampleMode::nearest, false, 2.0f},
      {{1, 2, 4, 5}, {1, 2, 7, 3}, ops::UpsampleMode::nearest, false, 0.0f},
      {{2, 2, 3, 4}, {2, 2, 6, 8}, ops::UpsampleMode::bilinear, false, 2.0f},
      {{2, 2, 3, 4}, {2, 2, 6, 8}, ops::UpsampleMode::bilinear, true, 2.0f},
      {{1, 3, 5, 4}, {1, 3, 7, 9}, ops::UpsampleMode::bilinear, false, 0.0f},
      {{1, 3, 5, 4}, {1, 3, 3, 9}, ops::UpsampleMode::bilinear, true, 0.0f},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.x.str() + " -> " + k.y.str() + (k.align_corners ? " align_corners" : ""));
    ops::UpsampleParams p;
    p.mode = k.mode;
    p.align_corners = k.align_corners;
    p.scale_h = p.scale_w = k.scale;
    std::vector<Tensor> inputs{random_tensor(k.x, 5)};
    const auto forward = [&](std::vector<Tensor>& in) {
      Tensor y = Tensor::empty(k.y);
      ops::upsample2d_forward(in[0], y, p);
      return y;
    };
    const auto backward = [&](std::vector<Tensor>&, const Tensor& dy) {
      Tensor dx = Tensor::empty(k.x);
      ops::upsample2d_backward(dy, dx, p);
      return std::vector<Tensor>{dx};
    };
    testing::expect_gradients_match(inputs, forward, backward, {0});
  }
}

TEST(Upsample2d, ArgumentErrorsNameTheOp) {
  const ops::UpsampleParams p;
  Tensor y = Tensor::zeros({2, 4, 8, 8});
  const std::string bad_c = error_of([&] {
    ops::upsample2d_forward(Tensor::zeros({2, 3, 4, 4}), y, p);
  });
  EXPECT_EQ(
      bad_c.rfind("upsample2d_forward: y [2, 4, 8, 8] and x [2, 3, 4, 4] differ in N or C", 0), 0u)
      << bad_c;
  const std::string bad_ndim = error_of([&] {
    ops::upsample2d_forward(Tensor::zeros({2, 4, 4}), y, p);
  });
  EXPECT_EQ(bad_ndim.rfind("upsample2d_forward: x must be [N, C, H, W]", 0), 0u) << bad_ndim;
  Tensor dx = Tensor::zeros({2, 4, 4, 4});
  const std::string bad_dtype = error_of([&] {
    ops::upsample2d_backward(Tensor::zeros({2, 4, 8, 8}, DType::i32), dx, p);
  });
  EXPECT_EQ(bad_dtype.rfind("upsample2d_backward: dy must be f32", 0), 0u) << bad_dtype;
}

}  // namespace
}  // namespace ruche
