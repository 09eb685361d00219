// The global gradient norm, the non-finite flag and clipping, against
// torch.nn.utils.clip_grad_norm_ (tests/ops/reference/ref_optim.py).
#include "engine/optim/grad_norm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::reference;

TEST(GradNorm, ClipMatchesTorch) {
  for (const char* c : {"clip_grad_norm", "clip_grad_norm_noop"}) {
    SCOPED_TRACE(c);
    Tensor grads = reference(c, "grads").clone();
    const float max_norm = reference(c, "max_norm").item();
    const GradStats stats = grad_stats(grads, grads.numel());
    EXPECT_TRUE(stats.finite);
    EXPECT_NEAR(stats.norm, reference(c, "total_norm").item(), 1e-6 * stats.norm);
    EXPECT_DOUBLE_EQ(stats.sum_squares, stats.norm * stats.norm);
    const float factor = clip_grad_norm(grads, grads.numel(), stats, max_norm);
    EXPECT_TENSORS_CLOSE(grads, reference(c, "clipped"), 1e-6);
    if (max_norm < stats.norm) {
      EXPECT_NEAR(factor, max_norm / stats.norm, 1e-6);
    } else {
      EXPECT_EQ(factor, 1.0f);
    }
  }
}

TEST(GradNorm, CountsOnlyTheTrainablePrefix) {
  Tensor grads = Tensor::from_vector(std::vector<float>{3, 4, 100}, {3});
  const GradStats stats = grad_stats(grads, 2);
  EXPECT_DOUBLE_EQ(stats.norm, 5.0);
  EXPECT_FLOAT_EQ(clip_grad_norm(grads, 2, stats, 1.0f), static_cast<float>(1.0 / (5 + 1e-6)));
  EXPECT_EQ(grads.to_vector<float>()[2], 100.0f);
  // max_norm 0: no clipping.
  EXPECT_EQ(clip_grad_norm(grads, 2, grad_stats(grads, 2), 0.0f), 1.0f);
}

TEST(GradNorm, FlagsNonFiniteAndDoesNotClipThem) {
  const std::int64_t n = 1 << 17;  // on the OpenMP team
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    Tensor grads = Tensor::zeros({n});
    grads.fill(0.5f);
    grads.data<float>()[n - 3] = bad;
    const GradStats stats = grad_stats(grads, n);
    EXPECT_FALSE(stats.finite) << bad;
    EXPECT_EQ(clip_grad_norm(grads, n, stats, 1.0f), 1.0f);
    EXPECT_EQ(grads.data<float>()[0], 0.5f);
    // Outside the trainable prefix it does not count.
    EXPECT_TRUE(grad_stats(grads, n - 3).finite);
  }
}

// Large finite gradients do not overflow: the sum is in double.
TEST(GradNorm, SumsInDouble) {
  Tensor grads = Tensor::zeros({4});
  grads.fill(1e30f);
  const GradStats stats = grad_stats(grads, 4);
  EXPECT_TRUE(stats.finite);
  EXPECT_NEAR(stats.norm, 2e30, 1e24);
}

TEST(GradNorm, DeterministicForAThreadCount) {
  const std::int64_t n = 1 << 20;
  std::vector<float> v(n);
  for (std::int64_t i = 0; i < n; ++i) v[i] = std::sin(static_cast<float>(i)) * 1e-3f;
  const Tensor grads = Tensor::from_vector(v, {n});
  const double first = grad_stats(grads, n).sum_squares;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(grad_stats(grads, n).sum_squares, first);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double serial = grad_stats(grads, n).sum_squares;
  omp_set_num_threads(saved);
  EXPECT_NEAR(serial, first, 1e-12 * first);
}

}  // namespace
}  // namespace ruche
