// Losses: softmax cross-entropy against F.cross_entropy (plain, label smoothing, class weights,
// both, ignore_index) and against ignored labels worked by hand, mse against F.mse_loss, the
// pointwise losses against F.l1_loss, F.smooth_l1_loss and F.binary_cross_entropy_with_logits,
// finite-difference gradients, label and shape errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::reference;

struct CrossEntropyCase {
  const char* name;
  bool weighted = false, ignores = false;
};

ops::CrossEntropyParams params_of(const CrossEntropyCase& c) {
  ops::CrossEntropyParams p;
  p.label_smoothing = reference(c.name, "smoothing").item();
  if (c.weighted) p.class_weights = reference(c.name, "weight");
  if (c.ignores) p.ignore_label = reference(c.name, "ignore").to_vector<std::int32_t>()[0];
  return p;
}

class CrossEntropyReference : public ::testing::TestWithParam<CrossEntropyCase> {};

TEST_P(CrossEntropyReference, MatchesTorch) {
  const std::string c = GetParam().name;
  const ops::CrossEntropyParams p = params_of(GetParam());
  const Tensor logits = reference(c, "logits"), labels = reference(c, "labels");
  Tensor probs = Tensor::empty(logits.shape()), loss = Tensor::empty({1});
  ops::softmax_cross_entropy_forward(logits, labels, probs, loss, p);
  EXPECT_TENSORS_CLOSE(loss, reference(c, "loss"), 1e-5);
  EXPECT_TENSORS_CLOSE(probs, reference(c, "probs"), 1e-5);
  Tensor dlogits = Tensor::empty(logits.shape());
  ops::softmax_cross_entropy_backward(probs, labels, dlogits, reference(c, "dloss").item(), p);
  EXPECT_TENSORS_CLOSE(dlogits, reference(c, "dlogits"), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Loss, CrossEntropyReference,
                         ::testing::Values(CrossEntropyCase{"ce_plain"},
                                           CrossEntropyCase{"ce_smoothing"},
                                           CrossEntropyCase{"ce_weights", true},
                                           CrossEntropyCase{"ce_weights_smoothing", true},
                                           CrossEntropyCase{"ce_one_class_heavy", true},
                                           CrossEntropyCase{"ce_ignore_outside", false, true},
                                           CrossEntropyCase{"ce_ignore_class", true, true}));

// Rows [0, 0] label 0, [ln 3, 0] ignored (-1), [0, 0] label 1: each counted row's loss is ln 2 and
// the mean divides by 2, not 3; the ignored row's gradient is 0, the others' (p - onehot) / 2.
TEST(CrossEntropy, IgnoredLabelWorkedByHand) {
  const Tensor logits = Tensor::from_vector({0.0f, 0.0f, std::log(3.0f), 0.0f, 0.0f, 0.0f}, {3, 2});
  const Tensor labels = Tensor::from_vector<std::int32_t>({0, -1, 1}, {3});
  ops::CrossEntropyParams p;
  p.ignore_label = -1;
  Tensor probs = Tensor::empty({3, 2}), loss = Tensor::empty({1}), dlogits = Tensor::empty({3, 2});
  ops::softmax_cross_entropy_forward(logits, labels, probs, loss, p);
  EXPECT_NEAR(loss.item(), std::log(2.0), 1e-6);
  EXPECT_TENSORS_CLOSE(probs, Tensor::from_vector({0.5f, 0.5f, 0.75f, 0.25f, 0.5f, 0.5f}, {3, 2}),
                       1e-6);
  ops::softmax_cross_entropy_backward(probs, labels, dlogits, 1.0f, p);
  EXPECT_TENSORS_CLOSE(
      dlogits, Tensor::from_vector({-0.25f, 0.25f, 0.0f, 0.0f, 0.25f, -0.25f}, {3, 2}), 1e-6);
  // Without ignore_label the -1 is a bad label, and with it another bad label still is.
  EXPECT_THROW(ops::softmax_cross_entropy_forward(logits, labels, probs, loss, {}), Error);
  p.ignore_label = -2;
  EXPECT_THROW(ops::softmax_cross_entropy_forward(logits, labels, probs, loss, p), Error);
  EXPECT_THROW(ops::softmax_cross_entropy_backward(probs, labels, dlogits, 1.0f, p), Error);
}

// Caffe's divisor max(1, count): a batch with every label ignored has loss 0 and gradient 0.
TEST(CrossEntropy, EveryLabelIgnoredGivesZeroLossAndGradient) {
  const Tensor logits = testing::random_tensor({4, 3}, 5, -2.0f, 2.0f);
  const Tensor labels = Tensor::from_vector<std::int32_t>({255, 255, 255, 255}, {4});
  ops::CrossEntropyParams p;
  p.ignore_label = 255;
  p.label_smoothing = 0.1f;
  Tensor probs = Tensor::empty({4, 3}), loss = Tensor::empty({1}), dlogits = Tensor::empty({4, 3});
  ops::softmax_cross_entropy_forward(logits, labels, probs, loss, p);
  EXPECT_EQ(loss.item(), 0.0f);
  ops::softmax_cross_entropy_backward(probs, labels, dlogits, 1.0f, p);
  for (float d : dlogits.to_vector()) EXPECT_EQ(d, 0.0f);
}

TEST(CrossEntropy, GradientMatchesFiniteDifferences) {
  const std::int64_t N = 6, C = 5;
  const Tensor labels = Tensor::from_vector<std::int32_t>({0, 4, 2, 2, 1, 3}, {N});
  for (int variant = 0; variant < 8; ++variant) {
    SCOPED_TRACE("variant " + std::to_string(variant));
    ops::CrossEntropyParams p;
    if (variant & 1) p.label_smoothing = 0.15f;
    if (variant & 2) p.class_weights = Tensor::from_vector({0.5f, 2.0f, 1.0f, 0.25f, 1.5f}, {C});
    if (variant & 4) p.ignore_label = 2;  // rows 2 and 3
    auto forward = [&](std::vector<Tensor>& in) {
      Tensor probs = Tensor::empty({N, C}), loss = Tensor::empty({1});
      ops::softmax_cross_entropy_forward(in[0], labels, probs, loss, p);
      return loss;
    };
    auto backward = [&](std::vector<Tensor>& in, const Tensor& dloss) {
      Tensor probs = Tensor::empty({N, C}), loss = Tensor::empty({1});
      ops::softmax_cross_entropy_forward(in[0], labels, probs, loss, p);
      Tensor dlogits = Tensor::empty({N, C});
      ops::softmax_cross_entropy_backward(probs, labels, dlogits, dloss.item(), p);
      return std::vector<Tensor>{dlogits};
    };
    testing::expect_gradients_match({testing::random_tensor({N, C}, 1, -2.0f, 2.0f)}, forward,
                                    backward, {0});
  }
}

TEST(CrossEntropy, OutOfRangeLabelNamesIndexAndValue) {
  const Tensor logits = Tensor::zeros({4, 3});
  Tensor probs = Tensor::empty({4, 3}), loss = Tensor::empty({1}), dlogits = Tensor::empty({4, 3});
  for (std::int32_t bad : {3, -1}) {
    const Tensor labels = Tensor::from_vector<std::int32_t>({0, 2, bad, 1}, {4});
    const std::string expected = "label " + std::to_string(bad) + " at index 2 is out of range";
    try {
      ops::softmax_cross_entropy_forward(logits, labels, probs, loss, {});
      ADD_FAILURE() << "label " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("softmax_cross_entropy_forward: " + expected),
                std::string::npos)
          << e.what();
    }
    EXPECT_THROW(ops::softmax_cross_entropy_backward(probs, labels, dlogits, 1.0f, {}), Error);
  }
}

TEST(CrossEntropy, ShapeAndDtypeErrors) {
  const Tensor logits = Tensor::zeros({4, 3});
  Tensor probs = Tensor::empty({4, 3}), loss = Tensor::empty({1});
  const Tensor labels = Tensor::from_vector<std::int32_t>({0, 1, 2, 0}, {4});
  EXPECT_THROW(ops::softmax_cross_entropy_forward(logits, Tensor::zeros({4}), probs, loss, {}),
               Error);  // f32 labels
  EXPECT_THROW(ops::softmax_cross_entropy_forward(
                   logits, Tensor::from_vector<std::int32_t>({0, 1, 2}, {3}), probs, loss, {}),
               Error);
  ops::CrossEntropyParams p;
  p.class_weights = Tensor::zeros({4});
  EXPECT_THROW(ops::softmax_cross_entropy_forward(logits, labels, probs, loss, p), Error);
  Tensor loss2 = Tensor::empty({2});
  EXPECT_THROW(ops::softmax_cross_entropy_forward(logits, labels, probs, loss2, {}), Error);
}

TEST(Mse, MatchesTorch) {
  const Tensor pred = reference("mse", "pred"), target = reference("mse", "target");
  Tensor loss = Tensor::empty({1});
  ops::mse_forward(pred, target, loss);
  EXPECT_TENSORS_CLOSE(loss, reference("mse", "loss"), 1e-5);
  Tensor dpred = Tensor::empty(pred.shape());
  ops::mse_backward(pred, target, dpred, reference("mse", "dloss").item());
  EXPECT_TENSORS_CLOSE(dpred, reference("mse", "dpred"), 1e-5);
}

TEST(Mse, GradientMatchesFiniteDifferences) {
  const Shape shape{4, 7};
  const Tensor target = testing::random_tensor(shape, 2);
  auto forward = [&](std::vector<Tensor>& in) {
    Tensor loss = Tensor::empty({1});
    ops::mse_forward(in[0], target, loss);
    return loss;
  };
  auto backward = [&](std::vector<Tensor>& in, const Tensor& dloss) {
    Tensor dpred = Tensor::empty(shape);
    ops::mse_backward(in[0], target, dpred, dloss.item());
    return std::vector<Tensor>{dpred};
  };
  testing::expect_gradients_match({testing::random_tensor(shape, 3)}, forward, backward, {0});
}

struct PointwiseCase {
  const char* name;
  ops::PointwiseLoss kind;
};
const PointwiseCase kPointwise[] = {{"l1", ops::PointwiseLoss::l1},
                                    {"smooth_l1", ops::PointwiseLoss::smooth_l1},
                                    {"bce_logits", ops::PointwiseLoss::bce_logits}};

TEST(PointwiseLoss, MatchesTorch) {
  for (const auto& c : kPointwise) {
    SCOPED_TRACE(c.name);
    const Tensor pred = reference(c.name, "pred"), target = reference(c.name, "target");
    const ops::PointwiseLossParams p{c.kind, 1.0f};
    Tensor loss = Tensor::empty({1});
    ops::pointwise_loss_forward(p, pred, target, loss);
    EXPECT_TENSORS_CLOSE(loss, reference(c.name, "loss"), 1e-6);
    Tensor dpred = Tensor::empty(pred.shape());
    ops::pointwise_loss_backward(p, pred, target, dpred, reference(c.name, "dloss").item());
    EXPECT_TENSORS_CLOSE(dpred, reference(c.name, "dpred"), 1e-6);
  }
}

TEST(PointwiseLoss, GradientMatchesFiniteDifferences) {
  const Shape shape{4, 7};
  const Tensor target = testing::random_tensor(shape, 2);
  // Predictions away from the kinks (|d| = 0 for L1, |d| = beta for smooth L1): |d| in
  // [0.2, 0.8] or [1.2, 1.8], either sign.
  const Tensor u = testing::random_tensor(shape, 3);
  std::vector<float> pred = target.to_vector<float>();
  const std::vector<float> r = u.to_vector<float>();
  for (std::size_t i = 0; i < pred.size(); ++i) {
    const float a = 0.2f + 0.6f * std::fmod(std::fabs(r[i]), 1.0f) + (i % 2 ? 1.0f : 0.0f);
    pred[i] += (i % 3 ? a : -a);
  }
  for (const auto& c : kPointwise) {
    SCOPED_TRACE(c.name);
    const ops::PointwiseLossParams p{c.kind, 1.0f};
    auto forward = [&](std::vector<Tensor>& in) {
      Tensor loss = Tensor::empty({1});
      ops::pointwise_loss_forward(p, in[0], target, loss);
      return loss;
    };
    auto backward = [&](std::vector<Tensor>& in, const Tensor& dloss) {
      Tensor dpred = Tensor::empty(shape);
      ops::pointwise_loss_backward(p, in[0], target, dpred, dloss.item());
      return std::vector<Tensor>{dpred};
    };
    testing::expect_gradients_match({Tensor::from_vector(pred, shape)}, forward, backward, {0});
  }
}

TEST(PointwiseLoss, ShapesAndBetaAreChecked) {
  Tensor loss = Tensor::empty({1});
  const Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2});
  EXPECT_THROW(ops::pointwise_loss_forward({ops::PointwiseLoss::l1, 1.0f}, a, b, loss), Error);
  EXPECT_THROW(ops::pointwise_loss_forward({ops::PointwiseLoss::smooth_l1, 0.0f}, a, a, loss),
               Error);
  // BCE with logits at z = 0 against t = 0: log 2 per element.
  ops::pointwise_loss_forward({ops::PointwiseLoss::bce_logits, 1.0f}, a, a, loss);
  EXPECT_NEAR(loss.item(), std::log(2.0f), 1e-7);
  // Huge logits stay finite (the stable form).
  const Tensor z = Tensor::from_vector(std::vector<float>{100.0f, -100.0f}, Shape{2});
  const Tensor t = Tensor::from_vector(std::vector<float>{0.0f, 1.0f}, Shape{2});
  ops::pointwise_loss_forward({ops::PointwiseLoss::bce_logits, 1.0f}, z, t, loss);
  EXPECT_NEAR(loss.item(), 100.0f, 1e-4);
}

}  // namespace
}  // namespace ruche
