// Learning-rate policies against torch.optim.lr_scheduler (tests/ops/reference/ref_optim.py),
// the warmup shape, and errors.
#include "engine/optim/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <string>

#include "engine/proto/text_format.h"
#include "tests/support/errors.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::reference;

proto::SolverParameter solver_from(const std::string& text) {
  proto::SolverParameter solver;
  parse_prototxt(text, "solver", solver);
  return solver;
}

TEST(LrSchedule, MatchesTorchSchedulers) {
  for (const char* name : {"step", "multistep", "exp", "cosine", "poly"}) {
    SCOPED_TRACE(name);
    const std::string c = std::string("lr_") + name;
    const auto bytes = reference(c, "solver").to_vector<std::uint8_t>();
    const auto solver = solver_from(std::string(bytes.begin(), bytes.end()));
    const std::int64_t total = reference(c, "total_steps").to_vector<std::int64_t>()[0];
    const auto lrs = reference(c, "lrs").to_vector<float>();
    for (std::size_t step = 0; step < lrs.size(); ++step) {
      // Relative to base_lr: torch's chainable forms accumulate float64 rounding.
      EXPECT_NEAR(lr_at(solver, static_cast<std::int64_t>(step), 0, total), lrs[step],
                  1e-6 * solver.base_lr())
          << "step " << step;
    }
  }
}

TEST(LrSchedule, FixedAndFloors) {
  EXPECT_EQ(lr_at(solver_from("base_lr: 0.3"), 1000, 0, 0), 0.3f);
  // poly with a floor: min_lr + (base - min_lr) (1 - t)^power, and it stays at min_lr past the end.
  const auto poly = solver_from("base_lr: 1 lr_policy: 'poly' power: 2 min_lr: 0.1");
  EXPECT_FLOAT_EQ(lr_at(poly, 5, 0, 10), 0.1f + 0.9f * 0.25f);
  EXPECT_FLOAT_EQ(lr_at(poly, 10, 0, 10), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(poly, 15, 0, 10), 0.1f);
  const auto cosine = solver_from("base_lr: 1 lr_policy: 'cosine' min_lr: 0.1");
  EXPECT_FLOAT_EQ(lr_at(cosine, 25, 0, 20), 0.1f);
}

// Goyal et al.: the policy's value times (step + 1) / W over the first W steps.
TEST(LrSchedule, LinearWarmupMultipliesThePolicy) {
  const auto s = solver_from("base_lr: 0.8 lr_policy: 'cosine' warmup_steps: 4 min_lr: 0");
  const std::int64_t total = 40;
  const auto cosine = [&](std::int64_t step) {
    return 0.8 * (1 + std::cos(std::numbers::pi * step / total)) / 2;
  };
  for (std::int64_t step = 0; step < 4; ++step) {
    EXPECT_NEAR(lr_at(s, step, 0, total), cosine(step) * (step + 1) / 4.0, 1e-7) << step;
  }
  for (std::int64_t step = 4; step < 10; ++step) {
    EXPECT_NEAR(lr_at(s, step, 0, total), cosine(step), 1e-7) << step;
  }
  // Increasing through the warmup, then no jump at its end.
  for (std::int64_t step = 1; step < 4; ++step) {
    EXPECT_GT(lr_at(s, step, 0, total), lr_at(s, step - 1, 0, total));
  }
  // warmup_epochs: rounded to steps with steps_per_epoch.
  const auto e = solver_from("base_lr: 0.5 warmup_epochs: 1.5");
  EXPECT_EQ(warmup_steps(e, 10), 15);
  EXPECT_FLOAT_EQ(lr_at(e, 0, 10, 100), 0.5f / 15);
  EXPECT_FLOAT_EQ(lr_at(e, 14, 10, 100), 0.5f);
  EXPECT_FLOAT_EQ(lr_at(e, 15, 10, 100), 0.5f);
  EXPECT_EQ(warmup_steps(solver_from("base_lr: 0.5"), 10), 0);
}

// Caffe's "inv" (LeNet's solver): base_lr * (1 + gamma * step)^-power, no run length needed.
TEST(LrSchedule, CaffeInv) {
  const auto s = solver_from("base_lr: 0.01 lr_policy: 'inv' gamma: 0.0001 power: 0.75");
  for (std::int64_t step : {0, 1, 100, 5000}) {
    EXPECT_NEAR(lr_at(s, step, 0, 0), 0.01 * std::pow(1 + 0.0001 * step, -0.75), 1e-9)
        << "step " << step;
  }
}

// Every policy Caffe has, against the formulas of its SGDSolver::GetLearningRate written out
// here (iter = the steps taken; poly's run length is max_iter).
TEST(LrSchedule, CaffePoliciesAreCaffesFormulas) {
  const std::int64_t max_iter = 1000;
  struct Case {
    const char* text;
    double (*caffe)(double iter);
  };
  const Case cases[] = {
      {"lr_policy: 'fixed'", [](double) { return static_cast<double>(0.01f); }},
      {"lr_policy: 'step' gamma: 0.5 stepsize: 300",
       [](double i) { return 0.01f * std::pow(0.5f, std::floor(i / 300)); }},
      {"lr_policy: 'multistep' gamma: 0.5 stepvalue: 100 stepvalue: 700",
       [](double i) { return 0.01f * std::pow(0.5f, (i >= 100) + (i >= 700)); }},
      {"lr_policy: 'exp' gamma: 0.999", [](double i) { return 0.01f * std::pow(0.999f, i); }},
      {"lr_policy: 'inv' gamma: 0.5 power: 0.75",
       [](double i) { return 0.01f * std::pow(1 + 0.5f * i, -0.75f); }},
      {"lr_policy: 'poly' power: 0.75",
       [](double i) { return 0.01f * std::pow(1 - i / 1000, 0.75f); }},
      {"lr_policy: 'sigmoid' gamma: -0.01 stepsize: 300",
       [](double i) { return 0.01f * (1 / (1 + std::exp(0.01f * (i - 300)))); }},
  };
  for (const Case& c : cases) {
    const auto s = solver_from(std::string("base_lr: 0.01 ") + c.text);
    for (std::int64_t iter : {0, 1, 99, 100, 299, 300, 301, 650, 700, 999}) {
      const double want = c.caffe(static_cast<double>(iter));
      EXPECT_NEAR(lr_at(s, iter, 0, max_iter), want, 2e-7 * want) << c.text << " at iter " << iter;
    }
  }
}

TEST(LrSchedule, ClearErrors) {
  EXPECT_EQ(testing::error_of([] { lr_at(solver_from("lr_policy: 'triangular'"), 0, 0, 10); }),
            "solver: unknown lr_policy 'triangular'; valid policies: fixed, step, multistep, exp, "
            "inv, sigmoid, poly, cosine");
  EXPECT_NE(testing::error_of([] {
              lr_at(solver_from("lr_policy: 'step'"), 0, 0, 10);
            }).find("needs stepsize > 0"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              lr_at(solver_from("lr_policy: 'cosine'"), 0, 0, 0);
            }).find("needs the run's length"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              lr_at(solver_from("lr_policy: 'multistep' stepvalue: 5 stepvalue: 3"), 0, 0, 10);
            }).find("increasing"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              lr_at(solver_from("warmup_steps: 3 warmup_epochs: 1"), 0, 10, 10);
            }).find("not both"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              lr_at(solver_from("warmup_epochs: 1"), 0, 0, 10);
            }).find("steps per epoch"),
            std::string::npos);
  EXPECT_NO_THROW(check_lr_schedule(solver_from("lr_policy: 'exp' gamma: 0.99"), 0, 0));
}

TEST(LrSchedule, MultistepInEpochs) {
  // Goyal et al.'s 30/60/80 scaled down: boundaries at epochs 1 and 2 of 10 steps each.
  const auto s = solver_from(
      "lr_policy: 'multistep' base_lr: 1 gamma: 0.1 "
      "stepvalue_epochs: 1 stepvalue_epochs: 2");
  EXPECT_FLOAT_EQ(lr_at(s, 9, 10, 100), 1.0f);
  EXPECT_FLOAT_EQ(lr_at(s, 10, 10, 100), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(s, 19, 10, 100), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(s, 20, 10, 100), 0.01f);
  EXPECT_NE(testing::error_of([] {
              lr_at(solver_from("lr_policy: 'multistep' stepvalue: 5 stepvalue_epochs: 1"), 0, 10,
                    100);
            }).find("not both"),
            std::string::npos);
}

}  // namespace
}  // namespace ruche
