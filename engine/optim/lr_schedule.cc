#include "engine/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

#include "engine/error.h"

namespace ruche {
namespace {

constexpr const char* kPolicies[] = {"fixed", "step",    "multistep", "exp",
                                     "inv",   "sigmoid", "poly",      "cosine"};

// The policy's lr at `step`, in double.
double policy_lr(const proto::SolverParameter& s, std::int64_t step, std::int64_t steps_per_epoch,
                 std::int64_t total_steps) {
  const std::string& policy = s.lr_policy();
  const double base = s.base_lr();
  const double gamma = s.gamma();
  if (policy == "fixed") return base;
  if (policy == "step") {
    RUCHE_REQUIRE(s.stepsize() > 0)
        << "solver: lr_policy 'step' needs stepsize > 0, got " << s.stepsize();
    // Caffe's floor(step / stepsize): the integer division is the point.
    // NOLINTNEXTLINE(bugprone-integer-division)
    return base * std::pow(gamma, static_cast<double>(step / s.stepsize()));
  }
  if (policy == "multistep" && s.stepvalue_epochs_size() > 0) {
    RUCHE_REQUIRE(s.stepvalue_size() == 0)
        << "solver: set stepvalue (steps) or stepvalue_epochs, not both";
    RUCHE_REQUIRE(steps_per_epoch > 0)
        << "solver: stepvalue_epochs needs the number of steps per epoch";
    int passed = 0;
    for (int i = 0; i < s.stepvalue_epochs_size(); ++i) {
      const float e = s.stepvalue_epochs(i);
      RUCHE_REQUIRE(e > 0 && (i == 0 || e > s.stepvalue_epochs(i - 1)))
          << "solver: stepvalue_epochs must be positive and increasing, got " << e
          << " at position " << i + 1;
      if (std::llround(static_cast<double>(e) * steps_per_epoch) <= step) ++passed;
    }
    return base * std::pow(gamma, passed);
  }
  if (policy == "multistep") {
    RUCHE_REQUIRE(s.stepvalue_size() > 0)
        << "solver: lr_policy 'multistep' needs stepvalue or stepvalue_epochs";
    int passed = 0;
    for (int i = 0; i < s.stepvalue_size(); ++i) {
      RUCHE_REQUIRE(s.stepvalue(i) > 0 && (i == 0 || s.stepvalue(i) > s.stepvalue(i - 1)))
          << "solver: stepvalue must be positive and increasing, got " << s.stepvalue(i)
          << " at position " << i + 1;
      if (s.stepvalue(i) <= step) ++passed;
    }
    return base * std::pow(gamma, passed);
  }
  if (policy == "exp") return base * std::pow(gamma, static_cast<double>(step));
  if (policy == "inv") {
    return base * std::pow(1 + gamma * static_cast<double>(step), -static_cast<double>(s.power()));
  }
  if (policy == "sigmoid") {
    return base / (1 + std::exp(-gamma * static_cast<double>(step - s.stepsize())));
  }
  if (policy == "poly" || policy == "cosine") {
    RUCHE_REQUIRE(total_steps > 0)
        << "solver: lr_policy '" << policy << "' needs the run's length (max_iter or max_epochs)";
    const double min_lr = s.min_lr();
    RUCHE_REQUIRE(min_lr >= 0 && min_lr <= base)
        << "solver: min_lr must be in [0, base_lr], got " << min_lr;
    const double t = static_cast<double>(std::min(step, total_steps)) / total_steps;
    if (policy == "poly") {
      RUCHE_REQUIRE(s.power() >= 0) << "solver: power must be >= 0, got " << s.power();
      return min_lr + (base - min_lr) * std::pow(1 - t, static_cast<double>(s.power()));
    }
    return min_lr + (base - min_lr) * (1 + std::cos(std::numbers::pi * t)) / 2;
  }
  std::ostringstream valid;
  for (const char* p : kPolicies) valid << (p == kPolicies[0] ? "" : ", ") << p;
  RUCHE_FAIL() << "solver: unknown lr_policy '" << policy << "'; valid policies: " << valid.str();
}

}  // namespace

std::int64_t warmup_steps(const proto::SolverParameter& s, std::int64_t steps_per_epoch) {
  RUCHE_REQUIRE(s.warmup_steps() >= 0 && s.warmup_epochs() >= 0)
      << "solver: warmup_steps and warmup_epochs must be >= 0";
  RUCHE_REQUIRE(s.warmup_steps() == 0 || s.warmup_epochs() == 0)
      << "solver: set warmup_steps or warmup_epochs, not both";
  if (s.warmup_steps() > 0) return s.warmup_steps();
  if (s.warmup_epochs() == 0) return 0;
  RUCHE_REQUIRE(steps_per_epoch > 0) << "solver: warmup_epochs needs the number of steps per epoch";
  return std::max<std::int64_t>(
      1, std::llround(static_cast<double>(s.warmup_epochs()) * steps_per_epoch));
}

float lr_at(const proto::SolverParameter& s, std::int64_t step, std::int64_t steps_per_epoch,
            std::int64_t total_steps) {
  RUCHE_REQUIRE(step >= 0) << "lr_at: negative step " << step;
  RUCHE_REQUIRE(s.base_lr() >= 0) << "solver: base_lr must be >= 0, got " << s.base_lr();
  double lr = policy_lr(s, step, steps_per_epoch, total_steps);
  const std::int64_t warmup = warmup_steps(s, steps_per_epoch);
  if (step < warmup) lr *= static_cast<double>(step + 1) / warmup;
  return static_cast<float>(lr);
}

void check_lr_schedule(const proto::SolverParameter& solver, std::int64_t steps_per_epoch,
                       std::int64_t total_steps) {
  (void)lr_at(solver, 0, steps_per_epoch, total_steps);
}

std::vector<std::string> lr_policies() { return {std::begin(kPolicies), std::end(kPolicies)}; }

}  // namespace ruche
