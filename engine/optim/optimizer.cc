#include "engine/optim/optimizer.h"

#include <cmath>
#include <sstream>

#include "engine/error.h"
#include "ops/ops.h"

namespace ruche {
namespace {

struct KindName {
  OptimizerKind kind;
  const char* name;
};
constexpr KindName kKinds[] = {{OptimizerKind::sgd, "sgd"},
                               {OptimizerKind::adam, "adam"},
                               {OptimizerKind::adamw, "adamw"},
                               {OptimizerKind::rmsprop, "rmsprop"},
                               {OptimizerKind::lars, "lars"}};

OptimizerKind kind_of(const std::string& type) {
  for (const KindName& k : kKinds) {
    if (type == k.name) return k.kind;
  }
  std::ostringstream valid;
  for (const KindName& k : kKinds) valid << (&k == kKinds ? "" : ", ") << k.name;
  RUCHE_FAIL() << "solver: unknown optimizer type '" << type << "'; valid types: " << valid.str();
}

bool has_momentum(OptimizerKind kind) {
  return kind == OptimizerKind::sgd || kind == OptimizerKind::lars;
}

OptimizerHyper hyper_of(OptimizerKind kind, const proto::SolverParameter& s) {
  OptimizerHyper h;
  h.momentum = s.momentum();
  if (kind == OptimizerKind::rmsprop && !s.has_momentum()) h.momentum = 0;
  if (kind == OptimizerKind::adam || kind == OptimizerKind::adamw) h.momentum = 0;
  h.nesterov = s.nesterov();
  h.caffe_momentum = s.momentum_form() == "caffe";
  h.weight_decay = s.weight_decay();
  h.l1_decay = s.l1_decay();
  h.beta1 = s.beta1();
  h.beta2 = s.beta2();
  h.eps = s.epsilon();
  h.alpha = s.rms_alpha();
  h.trust = s.lars_trust();
  const std::string& type = s.type();
  RUCHE_REQUIRE(h.momentum >= 0) << "solver: momentum must be >= 0, got " << h.momentum;
  RUCHE_REQUIRE(h.weight_decay >= 0) << "solver: weight_decay must be >= 0, got " << h.weight_decay;
  RUCHE_REQUIRE(h.l1_decay >= 0) << "solver: l1_decay must be >= 0, got " << h.l1_decay;
  RUCHE_REQUIRE(!h.nesterov || has_momentum(kind))
      << "solver: nesterov applies to sgd and lars, not " << type;
  RUCHE_REQUIRE(!h.nesterov || h.momentum > 0) << "solver: nesterov needs a momentum > 0";
  RUCHE_REQUIRE(s.momentum_form() == "pytorch" || s.momentum_form() == "caffe")
      << "solver: momentum_form must be pytorch or caffe, got '" << s.momentum_form() << "'";
  RUCHE_REQUIRE(!h.caffe_momentum || kind == OptimizerKind::sgd)
      << "solver: momentum_form caffe applies to sgd, not " << type;
  if (kind == OptimizerKind::adam || kind == OptimizerKind::adamw) {
    RUCHE_REQUIRE(h.beta1 >= 0 && h.beta1 < 1)
        << "solver: beta1 must be in [0, 1), got " << h.beta1;
    RUCHE_REQUIRE(h.beta2 >= 0 && h.beta2 < 1)
        << "solver: beta2 must be in [0, 1), got " << h.beta2;
  }
  if (kind == OptimizerKind::adam || kind == OptimizerKind::adamw ||
      kind == OptimizerKind::rmsprop) {
    RUCHE_REQUIRE(h.eps >= 0) << "solver: epsilon must be >= 0, got " << h.eps;
  }
  if (kind == OptimizerKind::rmsprop) {
    RUCHE_REQUIRE(h.alpha >= 0 && h.alpha <= 1)
        << "solver: rms_alpha must be in [0, 1], got " << h.alpha;
  }
  if (kind == OptimizerKind::lars) {
    RUCHE_REQUIRE(h.trust > 0) << "solver: lars_trust must be > 0, got " << h.trust;
  }
  return h;
}

void check_buffer(const char* what, const Tensor& t, std::int64_t min_numel, Device device) {
  RUCHE_REQUIRE(t.defined()) << "optimizer step: no " << what << " buffer given";
  t.check_dtype(DType::f32, what);
  RUCHE_REQUIRE(t.device() == device) << "optimizer step: " << what << " on " << t.device().str()
                                      << " but the optimizer state on " << device.str();
  RUCHE_REQUIRE(t.is_contiguous()) << "optimizer step: the " << what << " buffer is not contiguous";
  RUCHE_REQUIRE(t.numel() >= min_numel)
      << "optimizer step: the " << what << " buffer holds " << t.numel()
      << " elements, fewer than the " << min_numel << " trainable ones";
}

}  // namespace

Optimizer::Optimizer(OptimizerKind kind, const OptimizerHyper& hyper,
                     std::vector<ParamRange> ranges, std::int64_t num_trainable, Device device)
    : kind_(kind),
      hyper_(hyper),
      ranges_(std::move(ranges)),
      range_steps_(ranges_.size()),
      num_trainable_(num_trainable),
      device_(device) {
  for (const ParamRange& r : ranges_) update_ranges_.push_back({r.begin, r.end, r.adapt});
  std::vector<const char*> names;
  if (has_momentum(kind) && hyper.momentum != 0) names = {"momentum_buffer"};
  if (kind == OptimizerKind::adam || kind == OptimizerKind::adamw) {
    names = {"exp_avg", "exp_avg_sq"};
  }
  if (kind == OptimizerKind::rmsprop) {
    names = {"square_avg"};
    if (hyper.momentum > 0) names.push_back("momentum_buffer");
  }
  for (const char* n : names) {
    slots_.emplace_back(n, Tensor::zeros({num_trainable_}, DType::f32, device_));
  }
}

const char* Optimizer::name() const {
  for (const KindName& k : kKinds) {
    if (k.kind == kind_) return k.name;
  }
  return "?";
}

std::vector<std::pair<std::string, Tensor*>> Optimizer::slots() {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (auto& [name, tensor] : slots_) out.emplace_back(name, &tensor);
  return out;
}

void Optimizer::step(Tensor& params, const Tensor& grads, float lr) {
  check_buffer("params", params, num_trainable_, device_);
  check_buffer("grads", grads, num_trainable_, device_);
  RUCHE_REQUIRE(grads.numel() == num_trainable_)
      << "optimizer step: the gradient buffer holds " << grads.numel() << " elements, not the "
      << num_trainable_ << " trainable ones";
  RUCHE_REQUIRE(std::isfinite(lr) && lr >= 0) << "optimizer step: bad learning rate " << lr;
  ++step_count_;
  const double t = static_cast<double>(step_count_);
  // Host-side constants in double, as torch computes them in Python.
  const double bias_correction1 = 1 - std::pow(static_cast<double>(hyper_.beta1), t);
  const double bias_correction2 = 1 - std::pow(static_cast<double>(hyper_.beta2), t);
  for (std::size_t r = 0; r < ranges_.size(); ++r) {
    const ParamRange& range = ranges_[r];
    ops::RangeStep& c = range_steps_[r];
    const double range_lr = static_cast<double>(lr) * range.lr_mult;
    const double wd = static_cast<double>(hyper_.weight_decay) * range.decay_mult;
    c.lr = static_cast<float>(range_lr);
    c.weight_decay = static_cast<float>(wd);
    c.l1_decay = static_cast<float>(static_cast<double>(hyper_.l1_decay) * range.decay_mult);
    c.decoupled = static_cast<float>(1 - range_lr * wd);
    c.step_size = static_cast<float>(range_lr / bias_correction1);
    c.ratio = 1;  // lars: the op computes it
  }
  ops::OptimizerStep u;
  u.kind = kind_;
  u.hyper = hyper_;
  u.ranges = update_ranges_;
  u.steps = range_steps_;
  u.bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  Tensor none;
  ops::optimizer_update(u, params, grads, !slots_.empty() ? slots_[0].second : none,
                        slots_.size() > 1 ? slots_[1].second : none);
}

std::unique_ptr<Optimizer> make_optimizer(const proto::SolverParameter& solver,
                                          const std::vector<ParamEntry>& table,
                                          std::int64_t num_trainable, Device device) {
  const OptimizerKind kind = kind_of(solver.type());
  const OptimizerHyper hyper = hyper_of(kind, solver);
  return std::make_unique<Optimizer>(
      kind, hyper, build_param_ranges(table, num_trainable, solver.no_decay_bn_bias()),
      num_trainable, device);
}

std::unique_ptr<Optimizer> make_optimizer(const proto::SolverParameter& solver,
                                          const std::vector<ParamEntry>& table,
                                          std::int64_t num_trainable, Device device,
                                          std::int64_t begin, std::int64_t end) {
  RUCHE_CHECK(0 <= begin && begin <= end && end <= num_trainable)
      << "optimizer range [" << begin << ", " << end << ") of " << num_trainable << " elements";
  const OptimizerKind kind = kind_of(solver.type());
  const OptimizerHyper hyper = hyper_of(kind, solver);
  std::vector<ParamRange> mine;
  for (ParamRange r : build_param_ranges(table, num_trainable, solver.no_decay_bn_bias())) {
    if (r.end <= begin || r.begin >= end) continue;
    RUCHE_CHECK(r.begin >= begin && r.end <= end)
        << "tensor [" << r.begin << ", " << r.end << ") crosses the optimizer range [" << begin
        << ", " << end << ")";
    r.begin -= begin;
    r.end -= begin;
    mine.push_back(r);
  }
  auto optimizer = std::make_unique<Optimizer>(kind, hyper, std::move(mine), end - begin, device);
  optimizer->set_shard(begin, num_trainable);
  return optimizer;
}

std::vector<std::string> optimizer_types() {
  std::vector<std::string> out;
  for (const KindName& k : kKinds) out.emplace_back(k.name);
  return out;
}

}  // namespace ruche
