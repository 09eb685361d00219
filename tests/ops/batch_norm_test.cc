// batch norm: PyTorch references (training output, batch statistics, running statistics,
// gradients, inference output; [N, C] and [N, C, H, W], with and without gamma/beta),
// finite-difference gradients of x, gamma and beta, and errors.
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

class BatchNormReference : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchNormReference, MatchesTorch) {
  const std::string c = GetParam();
  const auto params = reference(c, "params").to_vector<float>();
  ops::BatchNormParams p;
  p.eps = params[0];
  p.momentum = params[1];
  const bool affine = params[2] != 0;
  const Tensor x = reference(c, "x");
  const Tensor gamma = affine ? reference(c, "gamma") : Tensor();
  const Tensor beta = affine ? reference(c, "beta") : Tensor();
  const std::int64_t channels = x.size(1);

  Tensor running_mean = reference(c, "running_mean_in").clone();
  Tensor running_var = reference(c, "running_var_in").clone();
  Tensor save_mean = Tensor::empty({channels}), save_var = Tensor::empty({channels});
  Tensor y = Tensor::empty(x.shape());
  ops::batch_norm_forward_training(x, gamma, beta, y, running_mean, running_var, save_mean,
                                   save_var, p);
  EXPECT_TENSORS_CLOSE(y, reference(c, "y"), 1e-5);
  EXPECT_TENSORS_CLOSE(save_mean, reference(c, "save_mean"), 1e-5);
  EXPECT_TENSORS_CLOSE(save_var, reference(c, "save_var"), 1e-5);
  EXPECT_TENSORS_CLOSE(running_mean, reference(c, "running_mean"), 1e-5);
  EXPECT_TENSORS_CLOSE(running_var, reference(c, "running_var"), 1e-5);

  Tensor dx = Tensor::empty(x.shape());
  Tensor dgamma = affine ? Tensor::empty({channels}) : Tensor();
  Tensor dbeta = affine ? Tensor::empty({channels}) : Tensor();
  ops::batch_norm_backward(reference(c, "dy"), x, gamma, save_mean, save_var, dx, dgamma, dbeta, p);
  EXPECT_TENSORS_CLOSE(dx, reference(c, "dx"), 1e-5);
  if (affine) {
    EXPECT_TENSORS_CLOSE(dgamma, reference(c, "dgamma"), 1e-5);
    EXPECT_TENSORS_CLOSE(dbeta, reference(c, "dbeta"), 1e-5);
  }

  Tensor y_inference = Tensor::empty(x.shape());
  ops::batch_norm_forward_inference(x, gamma, beta, running_mean, running_var, y_inference, p);
  EXPECT_TENSORS_CLOSE(y_inference, reference(c, "y_inference"), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Torch, BatchNormReference,
                         ::testing::Values("bn_2d", "bn_4d", "bn_4d_batch1", "bn_4d_wide",
                                           "bn_no_affine"));

// Gradients of x (and gamma, beta when affine) through a training forward.
void check_gradients(const Shape& shape, bool affine, std::uint32_t seed) {
  SCOPED_TRACE("batch norm " + shape.str() + (affine ? " affine" : ""));
  const std::int64_t c = shape[1];
  ops::BatchNormParams p;
  std::vector<Tensor> inputs{random_tensor(shape, seed, -2.0f, 2.0f),
                             affine ? random_tensor({c}, seed + 1, 0.5f, 1.5f) : Tensor(),
                             affine ? random_tensor({c}, seed + 2) : Tensor()};
  Tensor running_mean = Tensor::zeros({c}), running_var = Tensor::zeros({c});
  Tensor save_mean = Tensor::empty({c}), save_var = Tensor::empty({c});
  const auto forward = [&](std::vector<Tensor>& in) {
    Tensor y = Tensor::empty(shape);
    ops::batch_norm_forward_training(in[0], in[1], in[2], y, running_mean, running_var, save_mean,
                                     save_var, p);
    return y;
  };
  const auto backward = [&](std::vector<Tensor>& in, const Tensor& dy) {
    forward(in);  // the batch statistics of these inputs
    Tensor dx = Tensor::empty(shape);
    Tensor dgamma = affine ? Tensor::empty({c}) : Tensor();
    Tensor dbeta = affine ? Tensor::empty({c}) : Tensor();
    ops::batch_norm_backward(dy, in[0], in[1], save_mean, save_var, dx, dgamma, dbeta, p);
    return std::vector<Tensor>{dx, dgamma, dbeta};
  };
  std::vector<int> checked{0};
  if (affine) checked.insert(checked.end(), {1, 2});
  testing::expect_gradients_match(inputs, forward, backward, checked);
}

TEST(BatchNorm, GradientsMatchFiniteDifferences) {
  check_gradients({6, 3}, true, 10);
  check_gradients({1, 2, 3, 3}, true, 20);  // batch 1: statistics over H, W only
  check_gradients({3, 4, 5, 7}, true, 30);
  check_gradients({2, 5, 3, 2}, false, 40);
  check_gradients({4, 16, 3, 3}, true, 50);
}

TEST(BatchNorm, RunningStatisticsFollowMomentum) {
  // One channel, values 1..4: mean 2.5, biased variance 1.25, unbiased 5/3.
  const Tensor x = Tensor::from_vector({1.0f, 2.0f, 3.0f, 4.0f}, {4, 1});
  Tensor y = Tensor::empty({4, 1});
  Tensor rm = Tensor::from_vector({1.0f}, {1}), rv = Tensor::from_vector({2.0f}, {1});
  Tensor sm = Tensor::empty({1}), sv = Tensor::empty({1});
  ops::BatchNormParams p;
  p.momentum = 0.25f;
  ops::batch_norm_forward_training(x, Tensor(), Tensor(), y, rm, rv, sm, sv, p);
  EXPECT_FLOAT_EQ(sm.item(), 2.5f);
  EXPECT_FLOAT_EQ(sv.item(), 1.25f);
  EXPECT_FLOAT_EQ(rm.item(), 0.75f * 1.0f + 0.25f * 2.5f);
  EXPECT_FLOAT_EQ(rv.item(), 0.75f * 2.0f + 0.25f * (5.0f / 3.0f));
}

TEST(BatchNorm, ShapeMismatchesNameTheOp) {
  ops::BatchNormParams p;
  const Tensor x = Tensor::zeros({2, 3, 4, 4});
  Tensor y = Tensor::zeros(x.shape());
  Tensor rm = Tensor::zeros({3}), rv = Tensor::zeros({3}), sm = Tensor::zeros({3}),
         sv = Tensor::zeros({3});
  const Tensor g3 = Tensor::zeros({3}), g4 = Tensor::zeros({4});
  EXPECT_EQ(error_of([&] { ops::batch_norm_forward_training(x, g4, g3, y, rm, rv, sm, sv, p); }),
            "batch_norm_forward_training: gamma must be [3] (one value per channel), got [4]");
  Tensor y_bad = Tensor::zeros({2, 3, 4, 5});
  EXPECT_EQ(
      error_of([&] { ops::batch_norm_forward_training(x, g3, g3, y_bad, rm, rv, sm, sv, p); }),
      "batch_norm_forward_training: y has shape [2, 3, 4, 5] but x has [2, 3, 4, 4]");
  const Tensor x3 = Tensor::zeros({2, 3, 4});
  Tensor y3 = Tensor::zeros(x3.shape());
  EXPECT_EQ(error_of([&] { ops::batch_norm_forward_inference(x3, g3, g3, rm, rv, y3, p); }),
            "batch_norm_forward_inference: x must be [N, C] or [N, C, H, W], got [2, 3, 4]");
  const Tensor one = Tensor::zeros({1, 3, 1, 1});
  Tensor y1 = Tensor::zeros(one.shape());
  EXPECT_EQ(error_of([&] {
              ops::batch_norm_forward_training(one, g3, g3, y1, rm, rv, sm, sv, p);
            }).rfind("batch_norm_forward_training: expected more than 1 value per channel", 0),
            0u);
  Tensor dx = Tensor::zeros(x.shape()), dgamma = Tensor::zeros({3}), dbeta = Tensor::zeros({3});
  EXPECT_EQ(error_of([&] { ops::batch_norm_backward(y_bad, x, g3, sm, sv, dx, dgamma, dbeta, p); }),
            "batch_norm_backward: dy has shape [2, 3, 4, 5] but x has [2, 3, 4, 4]");
  EXPECT_EQ(
      error_of([&] { ops::batch_norm_backward(y, x, Tensor(), sm, sv, dx, dgamma, dbeta, p); }),
      "batch_norm_backward: dgamma must be given exactly when gamma is");
}

}  // namespace
}  // namespace ruche
