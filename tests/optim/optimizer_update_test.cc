// ops::optimizer_update on the CPU, called directly: elements outside the ranges (gaps, the tail)
// are left alone, LARS exempts ranges that do not adapt and the steps' ratio is not read, and the
// argument checks name the op and the argument.
#include <gtest/gtest.h>

#include <vector>

#include "ops/ops.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

TEST(OptimizerUpdate, TouchesOnlyTheRanges) {
  Tensor params = Tensor::from_vector(std::vector<float>(10, 1.0f), {10});
  const Tensor grads = Tensor::from_vector(std::vector<float>(10, 1.0f), {10});
  const std::vector<ops::UpdateRange> ranges = {{0, 2, true}, {5, 7, true}};
  std::vector<ops::RangeStep> steps(2);
  steps[0].lr = 0.5f;
  steps[1].lr = 0.25f;
  ops::OptimizerStep step;  // plain sgd
  step.ranges = ranges;
  step.steps = steps;
  Tensor none;
  ops::optimizer_update(step, params, grads, none, none);
  EXPECT_EQ(params.to_vector<float>(),
            (std::vector<float>{0.5f, 0.5f, 1, 1, 1, 0.75f, 0.75f, 1, 1, 1}));
}

TEST(OptimizerUpdate, LarsRatioComesFromTheNorms) {
  // p = (3, 4): ||p|| = 5; g = (0, 2): ||g|| = 2; ratio = trust * 5 / 2 (no decay).
  Tensor params = Tensor::from_vector(std::vector<float>{3, 4, 3, 4}, {4});
  const Tensor grads = Tensor::from_vector(std::vector<float>{0, 2, 0, 2}, {4});
  const std::vector<ops::UpdateRange> ranges = {{0, 2, true}, {2, 4, false}};
  std::vector<ops::RangeStep> steps(2);
  for (auto& s : steps) {
    s.lr = 1.0f;
    s.ratio = 123.0f;  // ignored: the op computes it
  }
  ops::OptimizerStep step;
  step.kind = ops::OptimizerKind::lars;
  step.hyper.trust = 0.1f;
  step.ranges = ranges;
  step.steps = steps;
  Tensor none;
  ops::optimizer_update(step, params, grads, none, none);
  const auto p = params.to_vector<float>();
  EXPECT_FLOAT_EQ(p[1], 4.0f - 0.25f * 2.0f);  // ratio 0.25
  EXPECT_EQ(p[0], 3.0f);
  EXPECT_EQ(p[3], 2.0f);  // not adapted: ratio 1
}

TEST(OptimizerUpdate, ClearErrors) {
  const std::vector<ops::UpdateRange> ranges = {{0, 10, true}};
  const std::vector<ops::RangeStep> steps(1);
  ops::OptimizerStep step;
  step.kind = ops::OptimizerKind::adam;
  step.ranges = ranges;
  step.steps = steps;
  Tensor params = Tensor::zeros({10}), slot = Tensor::zeros({10}), none;
  EXPECT_EQ(testing::error_of([&] { ops::optimizer_update(step, params, params, slot, none); }),
            "optimizer_update: slot1 is not given");
  Tensor short_grads = Tensor::zeros({9});
  EXPECT_EQ(
      testing::error_of([&] { ops::optimizer_update(step, params, short_grads, slot, slot); }),
      "optimizer_update: grads holds 9 elements but the ranges reach 10");
  const std::vector<ops::UpdateRange> overlapping = {{0, 6, true}, {5, 10, true}};
  const std::vector<ops::RangeStep> two(2);
  step.ranges = overlapping;
  step.steps = two;
  EXPECT_EQ(testing::error_of([&] { ops::optimizer_update(step, params, params, slot, slot); }),
            "optimizer_update: range 1 [5, 10) is reversed or starts before the previous range's "
            "end 6");
  step.steps = steps;
  EXPECT_EQ(testing::error_of([&] { ops::optimizer_update(step, params, params, slot, slot); }),
            "optimizer_update: 1 range steps for 2 ranges");
  Tensor out = Tensor::zeros({2}, DType::i64);
  EXPECT_EQ(testing::error_of([&] { ops::sum_squares_finite(params, 11, out); }),
            "sum_squares_finite: count 11 outside [0, 10] of x f32[10] cpu");
}

}  // namespace
}  // namespace ruche
