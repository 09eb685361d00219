// A training step's tallies on the CPU (ops/step_tallies.h): top-1 hits with ties, NaN rows and
// ignored labels, regression errors worked by hand (plain and through the sigmoid), the gradient
// sums with their non-finite count, the bad-label code's order and words, and the argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/ops.h"
#include "ops/step_tallies.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::expect_error;

TEST(StepTallies, Top1HitsTakeTheFirstMaximumAndSkipIgnoredRows) {
  const Tensor probs = Tensor::from_vector(std::vector<float>{0.2f, 0.5f, 0.3f,   // argmax 1
                                                              0.4f, 0.4f, 0.2f,   // tie: 0
                                                              NAN, 0.9f, 0.1f,    // NaN first: 1
                                                              0.1f, 0.1f, 0.8f},  // 2, ignored
                                           {4, 3});
  const Tensor labels = Tensor::from_vector(std::vector<std::int32_t>{1, 1, 1, 7}, {4});
  Tensor out = Tensor::zeros({2});
  ops::top1_hits(probs, labels, 4, 7, out);
  // Row 1's tie goes to class 0 (a miss); nothing is larger than a NaN in first place, so row 2
  // predicts 0 (a miss): one hit of three counted rows.
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{1, 3}));
  ops::top1_hits(probs, labels, 2, INT64_MIN, out);  // the first two rows, nothing ignored
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{1, 2}));
  EXPECT_EQ(ops::argmax_row(probs.data<float>() + 6, 3), 0);
  const std::vector<float> nan_later{0.5f, NAN, 0.7f};  // a NaN is never larger
  EXPECT_EQ(ops::argmax_row(nan_later.data(), 3), 2);
}

TEST(StepTallies, RegressionErrorsAreSumsOfPerRowMeans) {
  const Tensor prediction =
      Tensor::from_vector(std::vector<float>{0.0f, 1.0f, 0.5f, 0.25f}, {2, 2});
  const Tensor target = Tensor::from_vector(std::vector<float>{1.0f, 1.0f, 0.0f, 0.75f}, {2, 2});
  Tensor out = Tensor::zeros({3});
  ops::regression_errors(prediction, target, 2, false, out);
  // Row 0: d = (-1, 0): squared 0.5, absolute 0.5, one of two on the target's side. Row 1:
  // d = (0.5, -0.5): squared 0.25, absolute 0.5, 0.5 >= 0.5 against 0 < 0.5 misses, 0.25 against
  // 0.75 misses: 0 hits.
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{0.5f, 0.75f, 1.0f}));
  // Through the sigmoid: logits 0 are 0.5.
  const Tensor logits = Tensor::zeros({1, 2});
  const Tensor half = Tensor::from_vector(std::vector<float>{0.5f, 0.0f}, {1, 2});
  ops::regression_errors(logits, half, 1, true, out);
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{0.5f, 0.125f, 0.25f}));
}

TEST(StepTallies, SumSquaresCountNonFiniteElements) {
  Tensor x = Tensor::from_vector(std::vector<float>{3.0f, 4.0f, INFINITY, 1.0f}, {4});
  const ops::SumSquaresFinite first_two = ops::SumSquaresFinite::now(x, 2);
  EXPECT_EQ(first_two.sum_squares, 25.0);
  EXPECT_TRUE(first_two.finite);
  EXPECT_FALSE(ops::SumSquaresFinite::now(x, 3).finite);
  Tensor out = Tensor::zeros({2}, DType::i64);
  ops::sum_squares_finite(x, 0, out);
  EXPECT_EQ(ops::SumSquaresFinite::of(out).sum_squares, 0.0);
  EXPECT_TRUE(ops::SumSquaresFinite::of(out).finite);
}

TEST(StepTallies, BadLabelCodesOrderByRowAndSayWhatTheForwardSays) {
  // Compared as unsigned, as the device's atomicMin does: the earlier row wins whatever the labels.
  const auto code = [](std::int64_t row, std::int32_t label) {
    return static_cast<std::uint64_t>(ops::bad_label_code(row, label));
  };
  EXPECT_LT(code(1, -5), code(2, 0));
  EXPECT_LT(code(0, 2147483647), code(1, 3));
  EXPECT_LT(code(40000, -1), static_cast<std::uint64_t>(ops::kNoBadLabel));
  EXPECT_EQ(ops::bad_label_message("softmax_cross_entropy_forward", ops::bad_label_code(3, -2), 10),
            "softmax_cross_entropy_forward: label -2 at index 3 is out of range for 10 classes");
  // The CPU forward checks at once, label_check or not, with the same words.
  const Tensor logits = Tensor::zeros({2, 10});
  const Tensor labels = Tensor::from_vector(std::vector<std::int32_t>{0, 12}, {2});
  Tensor probs = Tensor::zeros({2, 10}), loss = Tensor::zeros({1});
  ops::CrossEntropyParams p;
  p.label_check = Tensor::zeros({1}, DType::i64);
  expect_error(
      [&] { ops::softmax_cross_entropy_forward(logits, labels, probs, loss, p); },
      {"softmax_cross_entropy_forward: label 12 at index 1 is out of range for 10 classes"});
}

TEST(StepTallies, BadArgumentsAreClearErrors) {
  const Tensor probs = Tensor::zeros({4, 3});
  const Tensor labels = Tensor::zeros({4}, DType::i32);
  Tensor out2 = Tensor::zeros({2}), out3 = Tensor::zeros({3});
  expect_error([&] { ops::top1_hits(probs, labels, 5, INT64_MIN, out2); },
               {"top1_hits: 5 rows asked of f32[4, 3] cpu"});
  expect_error([&] { ops::top1_hits(probs, Tensor::zeros({4}), 4, INT64_MIN, out2); },
               {"top1_hits: labels must be i32 [4]"});
  expect_error([&] { ops::top1_hits(probs, labels, 4, INT64_MIN, out3); },
               {"top1_hits: out must be f32 [2]"});
  expect_error(
      [&] {
        ops::regression_errors(probs, Tensor::zeros({4, 2}), 4, false, out3);
      },
      {"regression_errors: target f32[4, 2] cpu does not match prediction"});
  expect_error([&] { ops::regression_errors(probs, probs, 4, false, out2); },
               {"regression_errors: out must be f32 [3]"});
  expect_error([&] { ops::sum_squares_finite(probs, 12, out2); },
               {"sum_squares_finite: out must be i64 [2]"});
}

}  // namespace
}  // namespace ruche
