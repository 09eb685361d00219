// The fused optimizer against torch.optim (SGD, Adam, AdamW, RMSprop) and a float64 LARS reference
// (tests/ops/reference/ref_optim.py): the same parameters, per-step gradients and learning rates,
// compared tensor by tensor after every step; per-parameter multipliers, no_decay_bn_bias and
// frozen parameters; slots; errors.
#include "engine/optim/optimizer.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/proto/text_format.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::reference;

// Both norm-relative, per tensor, after each of the five steps. The parameters: float32 rounding
// of the same formulas in another order (measured: at most 2e-7). Their change since the start,
// a few percent of their size, magnifies that rounding (measured: at most 8e-7) but catches an
// error in the update itself (eps, bias correction, decay) that the parameters would hide.
constexpr double kParamTolerance = 1e-6;
constexpr double kDeltaTolerance = 5e-6;

std::string text_of(const Tensor& bytes) {
  const auto v = bytes.to_vector<std::uint8_t>();
  return std::string(v.begin(), v.end());
}

proto::SolverParameter solver_of(const std::string& test_case) {
  proto::SolverParameter solver;
  parse_prototxt(text_of(reference(test_case, "solver")), test_case, solver);
  return solver;
}

// The case's tensors as Net would list them: trainable first, frozen in the trailing region.
std::vector<ParamEntry> table_of(const std::string& test_case, std::int64_t* num_trainable) {
  const auto counts = reference(test_case, "counts").to_vector<std::int64_t>();
  const auto roles = reference(test_case, "roles").to_vector<std::int32_t>();
  const auto lr_mult = reference(test_case, "lr_mult").to_vector<float>();
  const auto decay_mult = reference(test_case, "decay_mult").to_vector<float>();
  const auto frozen = reference(test_case, "frozen").to_vector<std::uint8_t>();
  std::vector<ParamEntry> table;
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    ParamEntry e;
    e.name = "p";
    e.name += std::to_string(i);  // not "p" + ...: GCC 12 warns falsely (-Wrestrict)
    e.shape = Shape{counts[i]};
    e.role = static_cast<ParamRole>(roles[i]);
    e.offset = offset;
    e.count = counts[i];
    e.lr_mult = lr_mult[i];
    e.decay_mult = decay_mult[i];
    e.frozen = frozen[i] != 0;
    if (!e.frozen) *num_trainable = offset + counts[i];
    offset += counts[i];
    table.push_back(e);
  }
  return table;
}

// a - b, element by element.
Tensor minus(const Tensor& a, const Tensor& b) {
  auto va = a.to_vector<float>();
  const auto vb = b.to_vector<float>();
  for (std::size_t i = 0; i < va.size(); ++i) va[i] -= vb[i];
  return Tensor::from_vector(va, a.shape());
}

// Steps the case and compares every tensor after every step.
void check_case(const std::string& name) {
  SCOPED_TRACE(name);
  const std::string c = "optim_" + name;
  std::int64_t num_trainable = 0;
  const std::vector<ParamEntry> table = table_of(c, &num_trainable);
  const proto::SolverParameter solver = solver_of(c);
  auto opt = make_optimizer(solver, table, num_trainable);
  const Tensor params0 = reference(c, "params0");
  const Tensor grads = reference(c, "grads");
  const Tensor expected = reference(c, "expected");
  const auto lrs = reference(c, "lrs").to_vector<float>();
  Tensor params = params0.clone();
  for (std::int64_t step = 0; step < grads.size(0); ++step) {
    SCOPED_TRACE("step " + std::to_string(step + 1));
    Tensor g = grads.narrow(0, step, 1).view({num_trainable}).clone();
    opt->step(params, g, lrs[step]);
    EXPECT_EQ(opt->step_count(), step + 1);
    const Tensor want = expected.narrow(0, step, 1).view({-1});
    for (const ParamEntry& e : table) {
      SCOPED_TRACE(e.name);
      const Tensor got_e = params.narrow(0, e.offset, e.count);
      const Tensor want_e = want.narrow(0, e.offset, e.count);
      const Tensor start_e = params0.narrow(0, e.offset, e.count);
      if (e.frozen) {
        EXPECT_EQ(got_e.to_vector<float>(), start_e.to_vector<float>());
        continue;
      }
      EXPECT_TENSORS_CLOSE(got_e, want_e, kParamTolerance);
      EXPECT_TENSORS_CLOSE(minus(got_e, start_e), minus(want_e, start_e), kDeltaTolerance);
    }
  }
}

TEST(Optimizer, SgdMatchesTorch) {
  for (const char* name : {"sgd", "sgd_momentum", "sgd_nesterov", "sgd_decay"}) check_case(name);
}

TEST(Optimizer, AdamMatchesTorch) {
  for (const char* name : {"adam", "adam_decay"}) check_case(name);
}

TEST(Optimizer, AdamWMatchesTorch) { check_case("adamw"); }

TEST(Optimizer, RmspropMatchesTorch) {
  for (const char* name : {"rmsprop", "rmsprop_momentum"}) check_case(name);
}

// lr_mult, decay_mult, no_decay_bn_bias and a frozen tail, as torch param groups.
TEST(Optimizer, ParameterGroupsMatchTorch) {
  for (const char* name : {"groups_sgd", "groups_adamw"}) check_case(name);
}

TEST(Optimizer, LarsMatchesFloat64Reference) {
  for (const char* name : {"lars", "lars_groups"}) check_case(name);
}

ParamEntry entry(const std::string& name, ParamRole role, std::int64_t offset, std::int64_t count) {
  ParamEntry e;
  e.name = name;
  e.shape = Shape{count};
  e.role = role;
  e.offset = offset;
  e.count = count;
  return e;
}

std::vector<ParamEntry> two_tensors() {
  return {entry("fc.weight", ParamRole::weight, 0, 12), entry("fc.bias", ParamRole::bias, 12, 3)};
}

proto::SolverParameter solver_from(const std::string& text) {
  proto::SolverParameter solver;
  parse_prototxt(text, "solver", solver);
  return solver;
}

std::vector<std::string> slot_names(Optimizer& opt) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : opt.slots()) {
    names.push_back(name);
    EXPECT_EQ(tensor->numel(), opt.num_trainable()) << name;
  }
  return names;
}

TEST(Optimizer, SlotsAreNamedAsTorchState) {
  const auto table = two_tensors();
  using Names = std::vector<std::string>;
  EXPECT_EQ(slot_names(*make_optimizer(solver_from("type: 'sgd'"), table, 15)),
            Names{"momentum_buffer"});
  EXPECT_EQ(slot_names(*make_optimizer(solver_from("type: 'sgd' momentum: 0"), table, 15)),
            Names{});
  EXPECT_EQ(slot_names(*make_optimizer(solver_from("type: 'adam'"), table, 15)),
            (Names{"exp_avg", "exp_avg_sq"}));
  EXPECT_EQ(slot_names(*make_optimizer(solver_from("type: 'adamw'"), table, 15)),
            (Names{"exp_avg", "exp_avg_sq"}));
  // RMSprop takes momentum only when the solver sets it (torch's default is none).
  EXPECT_EQ(slot_names(*make_optimizer(solver_from("type: 'rmsprop'"), table, 15)),
            Names{"square_avg"});
  EXPECT_EQ(slot_names(*make_optimizer(solver_from("type: 'rmsprop' momentum: 0.5"), table, 15)),
            (Names{"square_avg", "momentum_buffer"}));
  EXPECT_EQ(slot_names(*make_optimizer(solver_from("type: 'lars'"), table, 15)),
            Names{"momentum_buffer"});
}

// A resumed optimizer (slots and step count restored) continues exactly as an uninterrupted one.
TEST(Optimizer, ResumeFromSlotsIsExact) {
  const auto table = two_tensors();
  const auto solver = solver_from("type: 'adam' weight_decay: 0.01");
  std::vector<float> p(15), g(15);
  for (int i = 0; i < 15; ++i) {
    p[i] = 0.1f * (i - 7);
    g[i] = 0.05f * ((i * 7) % 5 - 2);
  }
  Tensor params = Tensor::from_vector(p, {15});
  const Tensor grads = Tensor::from_vector(g, {15});
  auto a = make_optimizer(solver, table, 15);
  for (int i = 0; i < 3; ++i) a->step(params, grads, 0.01f);
  Tensor resumed_params = params.clone();
  auto b = make_optimizer(solver, table, 15);
  for (std::size_t s = 0; s < a->slots().size(); ++s) {
    b->slots()[s].second->copy_from(*a->slots()[s].second);
  }
  b->set_step_count(a->step_count());
  a->step(params, grads, 0.01f);
  b->step(resumed_params, grads, 0.01f);
  EXPECT_EQ(params.to_vector<float>(), resumed_params.to_vector<float>());
}

// momentum_form caffe is Caffe's SGDSolver (v = m v + lr (g + wd p); p -= v; Nesterov
// p -= (1 + m) v - m v_prev), checked against those formulas in double; it agrees with PyTorch's
// order while lr is constant and departs from it once lr drops.
TEST(Optimizer, CaffeMomentumFormIsCaffesAndDiffersAfterAnLrChange) {
  const auto table = two_tensors();  // decay_mult 1 on both
  const float lrs[] = {0.1f, 0.1f, 0.01f, 0.01f};
  std::vector<float> p(15);
  for (int i = 0; i < 15; ++i) p[i] = 0.1f * static_cast<float>(i - 7);
  const auto grads_at = [](int step) {
    std::vector<float> g(15);
    for (int i = 0; i < 15; ++i) g[i] = 0.05f * static_cast<float>((i * 7 + step) % 5 - 2);
    return g;
  };
  for (bool nesterov : {false, true}) {
    SCOPED_TRACE(nesterov ? "nesterov" : "momentum");
    const std::string common = std::string("type: 'sgd' momentum: 0.9 weight_decay: 0.01 ") +
                               (nesterov ? "nesterov: true " : "");
    auto caffe = make_optimizer(solver_from(common + "momentum_form: 'caffe'"), table, 15);
    auto torch = make_optimizer(solver_from(common), table, 15);
    Tensor caffe_params = Tensor::from_vector(p, {15});
    Tensor torch_params = Tensor::from_vector(p, {15});
    std::vector<double> want(p.begin(), p.end()), history(15, 0.0);
    for (int step = 0; step < 4; ++step) {
      SCOPED_TRACE("step " + std::to_string(step + 1));
      const auto g = grads_at(step);
      caffe->step(caffe_params, Tensor::from_vector(g, {15}), lrs[step]);
      torch->step(torch_params, Tensor::from_vector(g, {15}), lrs[step]);
      for (std::size_t i = 0; i < 15; ++i) {
        const double wd = 0.01;
        const double previous = history[i];
        history[i] = 0.9 * history[i] + lrs[step] * (g[i] + wd * want[i]);
        want[i] -= nesterov ? 1.9 * history[i] - 0.9 * previous : history[i];
      }
      const auto got = caffe_params.to_vector<float>();
      const auto other = torch_params.to_vector<float>();
      double largest_gap = 0;
      for (std::size_t i = 0; i < 15; ++i) {
        EXPECT_NEAR(got[i], want[i], 1e-6) << "element " << i;
        largest_gap = std::max(largest_gap, std::abs(static_cast<double>(got[i]) - other[i]));
      }
      // Before the drop the forms agree (float rounding only); after it PyTorch's history,
      // which does not hold lr, keeps its larger steps.
      if (step < 2)
        EXPECT_LT(largest_gap, 1e-6);
      else
        EXPECT_GT(largest_gap, 1e-3);
    }
  }
  EXPECT_NE(testing::error_of([&] {
              make_optimizer(solver_from("type: 'adam' momentum_form: 'caffe'"), table, 15);
            }).find("momentum_form caffe applies to sgd, not adam"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              make_optimizer(solver_from("momentum_form: 'keras'"), table, 15);
            }).find("momentum_form must be pytorch or caffe, got 'keras'"),
            std::string::npos);
}

// The element-wise update does not depend on the thread count (a big buffer, so it runs on the
// team).
TEST(Optimizer, SameBitsOnOneThreadAndMany) {
  const std::int64_t n = 1 << 20;
  const std::vector<ParamEntry> table = {entry("a", ParamRole::weight, 0, n / 2),
                                         entry("b", ParamRole::weight, n / 2, n / 2 - 5),
                                         entry("c", ParamRole::bias, n - 5, 5)};
  std::vector<float> p(n), g(n);
  for (std::int64_t i = 0; i < n; ++i) {
    p[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
    g[i] = static_cast<float>((i * 13) % 97) / 97.0f - 0.5f;
  }
  const Tensor grads = Tensor::from_vector(g, {n});
  for (const char* type : {"sgd", "adam", "adamw", "rmsprop"}) {
    SCOPED_TRACE(type);
    const auto solver = solver_from(std::string("type: '") + type + "' weight_decay: 0.01");
    std::vector<std::vector<float>> results;
    for (int threads : {1, 4}) {
      const int saved = omp_get_max_threads();
      omp_set_num_threads(threads);
      auto opt = make_optimizer(solver, table, n);
      Tensor params = Tensor::from_vector(p, {n});
      for (int s = 0; s < 2; ++s) opt->step(params, grads, 0.01f);
      omp_set_num_threads(saved);
      results.push_back(params.to_vector<float>());
    }
    EXPECT_TRUE(results[0] == results[1]);
  }
}

TEST(Optimizer, ClearErrors) {
  const auto table = two_tensors();
  EXPECT_EQ(testing::error_of([&] { make_optimizer(solver_from("type: 'adagrad'"), table, 15); }),
            "solver: unknown optimizer type 'adagrad'; valid types: sgd, adam, adamw, rmsprop, "
            "lars");
  EXPECT_NE(testing::error_of([&] {
              make_optimizer(solver_from("type: 'sgd' momentum: 0 nesterov: true"), table, 15);
            }).find("nesterov needs a momentum > 0"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              make_optimizer(solver_from("type: 'adam' beta2: 1"), table, 15);
            }).find("beta2 must be in [0, 1)"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              make_optimizer(solver_from("type: 'sgd' weight_decay: -1"), table, 15);
            }).find("weight_decay must be >= 0"),
            std::string::npos);
  // A trainable entry outside the gradient buffer.
  EXPECT_NE(testing::error_of([&] {
              make_optimizer(solver_from("type: 'sgd'"), table, 12);
            }).find("'fc.bias' at [12, 15) lies outside the 12 trainable elements"),
            std::string::npos);
  auto opt = make_optimizer(solver_from("type: 'sgd'"), table, 15);
  Tensor params = Tensor::zeros({15});
  Tensor short_grads = Tensor::zeros({14});
  EXPECT_NE(testing::error_of([&] {
              opt->step(params, short_grads, 0.1f);
            }).find("the grads buffer holds 14 elements, fewer than the 15 trainable ones"),
            std::string::npos);
  Tensor long_grads = Tensor::zeros({16});
  EXPECT_NE(testing::error_of([&] {
              opt->step(params, long_grads, 0.1f);
            }).find("the gradient buffer holds 16 elements, not the 15 trainable ones"),
            std::string::npos);
  Tensor grads = Tensor::zeros({15});
  EXPECT_NE(testing::error_of([&] { opt->step(params, grads, -0.1f); }).find("bad learning rate"),
            std::string::npos);
  EXPECT_EQ(opt->step_count(), 0);
}

}  // namespace
}  // namespace ruche
