// Caffe's solver.prototxt onto ruche's SolverParameter (engine/interop/caffe_import.h): the
// optimizer, its Caffe defaults, the lr policy and the cadences; what has no meaning here is a
// report line.
#include <cctype>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/interop/caffe_import.h"
#include "engine/interop/caffe_import.pb.h"
#include "engine/proto/text_format.h"

namespace ruche {
namespace {

namespace cf = ruche::caffe_import;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

proto::SolverParameter caffe_solver_from_text(const std::string& text, const std::string& where,
                                              std::vector<std::string>* report) {
  cf::SolverParameter in;
  parse_prototxt(text, where, in);
  proto::SolverParameter s;
  std::string type = lower(in.type());
  if (!in.has_type() && in.has_solver_type()) {
    const char* names[] = {"sgd", "nesterov", "adagrad", "rmsprop", "adadelta", "adam"};
    type = names[static_cast<int>(in.solver_type())];
  }
  RUCHE_REQUIRE(type == "sgd" || type == "nesterov" || type == "adam" || type == "rmsprop")
      << where << ": solver type '" << in.type() << "' is not mapped (SGD, Nesterov, Adam, RMSProp)";
  s.set_type(type == "nesterov" ? "sgd" : type);
  if (type == "nesterov") {
    s.set_nesterov(true);
    report->push_back(where + ": Nesterov: PyTorch's formulation (Caffe's differs after an lr change)");
  }
  s.set_base_lr(in.base_lr());
  s.set_momentum(in.momentum());  // Caffe's default is 0
  if (type == "adam") {
    s.set_beta1(in.has_momentum() ? in.momentum() : 0.9f);
    s.set_beta2(in.momentum2());
    s.set_epsilon(in.delta());
  } else if (type == "rmsprop") {
    s.set_rms_alpha(in.rms_decay());
    s.set_epsilon(in.delta());
  } else if (in.momentum() != 0) {
    report->push_back(where + ": momentum: PyTorch's update (v = m v + g, w -= lr v); Caffe's "
                      "(v = m v + lr g) differs after an lr change");
  }
  if (lower(in.regularization_type()) == "l1") s.set_l1_decay(in.weight_decay());
  else s.set_weight_decay(in.weight_decay());
  const std::string policy = in.has_lr_policy() ? lower(in.lr_policy()) : "fixed";
  RUCHE_REQUIRE(policy == "fixed" || policy == "step" || policy == "multistep" ||
                policy == "exp" || policy == "inv" || policy == "poly")
      << where << ": lr_policy '" << in.lr_policy()
      << "' is not mapped yet (fixed, step, multistep, exp, inv, poly)";
  s.set_lr_policy(policy);
  if (in.has_gamma()) s.set_gamma(in.gamma());
  if (in.has_stepsize()) s.set_stepsize(in.stepsize());
  for (int v : in.stepvalue()) s.add_stepvalue(v);
  if (policy == "poly" || policy == "inv") s.set_power(in.has_power() ? in.power() : 1.0f);
  if (in.has_max_iter()) s.set_max_iter(in.max_iter());
  s.set_iter_size(in.iter_size());
  if (in.has_display() && in.display() > 0) s.set_display(in.display());
  if (in.random_seed() >= 0) s.set_random_seed(static_cast<std::uint64_t>(in.random_seed()));
  if (in.clip_gradients() > 0) s.set_clip_grad_norm(in.clip_gradients());
  const auto dropped = [&](bool has, const std::string& what) {
    if (has) report->push_back(where + ": " + what + " dropped");
  };
  dropped(in.has_net() || in.has_train_net() || in.test_net_size() > 0,
          "net (give the imported net to ruche train --net)");
  dropped(in.test_iter_size() > 0, "test_iter (ruche validates the whole split)");
  dropped(in.has_test_interval(), "test_interval (ruche validates every epoch: eval_every_epochs)");
  dropped(in.has_snapshot() || in.has_snapshot_prefix(),
          "snapshot (ruche train --checkpoint-every-steps)");
  dropped(in.has_solver_mode() || in.has_device_id(), "solver_mode/device_id (ruche train --device)");
  dropped(in.has_average_loss(), "average_loss");
  return s;
}

}  // namespace ruche
