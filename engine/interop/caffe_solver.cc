// Caffe's solver.prototxt onto ruche's SolverParameter (engine/interop/caffe_import.h): the
// optimizer with Caffe's defaults and update order, the lr policy and the cadences; what has no
// meaning here is a report line.
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

// The type by name (any case), or by the older solver_type enum.
std::string solver_type(const cf::SolverParameter& in) {
  if (!in.has_type() && in.has_solver_type()) {
    const char* names[] = {"sgd", "nesterov", "adagrad", "rmsprop", "adadelta", "adam"};
    return names[static_cast<int>(in.solver_type())];
  }
  return lower(in.type());
}

// The optimizer and its hyperparameters; Caffe's proto defaults where a field is absent (momentum
// and Adam's beta1 0, momentum2 0.999, delta 1e-8, rms_decay 0.99).
void map_optimizer(const cf::SolverParameter& in, const std::string& where,
                   proto::SolverParameter& s, std::vector<std::string>* report) {
  const std::string type = solver_type(in);
  RUCHE_REQUIRE(type != "adagrad" && type != "adadelta")
      << where << ": solver type '" << (in.has_type() ? in.type() : type)
      << "' has no ruche optimizer (ruche has SGD, Nesterov, Adam, RMSProp; Caffe's AdaGrad and "
         "AdaDelta are not mapped)";
  RUCHE_REQUIRE(type == "sgd" || type == "nesterov" || type == "adam" || type == "rmsprop")
      << where << ": unknown solver type '" << in.type()
      << "' (Caffe's are SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam)";
  s.set_type(type == "nesterov" ? "sgd" : type);
  s.set_base_lr(in.base_lr());
  if (type == "sgd" || type == "nesterov") {
    s.set_momentum(in.momentum());
    s.set_nesterov(type == "nesterov");
    s.set_momentum_form("caffe");  // v = m v + lr g; w -= v
  } else if (type == "adam") {
    s.set_momentum(0);
    s.set_beta1(in.momentum());
    s.set_beta2(in.momentum2());
    s.set_epsilon(in.delta());
    report->push_back(where +
                      ": Adam: delta is added to sqrt(v) / sqrt(1 - momentum2^t) "
                      "(PyTorch's), Caffe adds it to sqrt(v); the same but for gradients near "
                      "delta");
  } else {  // rmsprop
    RUCHE_REQUIRE(in.momentum() == 0)
        << where << ": RMSProp with momentum " << in.momentum()
        << " (Caffe refuses it: 'Momentum cannot be used with RMSProp')";
    s.set_momentum(0);
    s.set_rms_alpha(in.rms_decay());
    s.set_epsilon(in.delta());
  }
  if (lower(in.regularization_type()) == "l1") {
    s.set_l1_decay(in.weight_decay());
  } else {
    RUCHE_REQUIRE(lower(in.regularization_type()) == "l2")
        << where << ": regularization_type '" << in.regularization_type() << "' (L1 or L2)";
    s.set_weight_decay(in.weight_decay());
  }
}

// Caffe's policies by its formulas (engine/optim/lr_schedule.h); gamma and power take Caffe's
// default 0 where the file leaves them out.
void map_lr_policy(const cf::SolverParameter& in, const std::string& where,
                   proto::SolverParameter& s, std::vector<std::string>* report) {
  if (!in.has_lr_policy()) {
    report->push_back(where + ": no lr_policy (Caffe stops on it); fixed");
  }
  const std::string policy = in.has_lr_policy() ? lower(in.lr_policy()) : "fixed";
  RUCHE_REQUIRE(policy == "fixed" || policy == "step" || policy == "multistep" || policy == "exp" ||
                policy == "inv" || policy == "poly" || policy == "sigmoid")
      << where << ": unknown lr_policy '" << in.lr_policy()
      << "' (Caffe's are fixed, step, multistep, exp, inv, poly, sigmoid)";
  s.set_lr_policy(policy);
  if (policy != "fixed" && policy != "poly") s.set_gamma(in.gamma());
  if (policy == "step" || policy == "sigmoid") s.set_stepsize(in.stepsize());
  for (int v : in.stepvalue()) s.add_stepvalue(v);
  if (policy == "poly" || policy == "inv") s.set_power(in.power());
  RUCHE_REQUIRE(policy != "poly" || in.max_iter() > 0)
      << where << ": lr_policy poly needs max_iter";
}

// The run's length and cadences: validation (test_interval), checkpoints (snapshot), display.
void map_cadences(const cf::SolverParameter& in, const std::string& where,
                  proto::SolverParameter& s, std::vector<std::string>* report) {
  if (in.has_max_iter()) s.set_max_iter(in.max_iter());
  s.set_iter_size(in.iter_size());
  if (in.has_display() && in.display() > 0) s.set_display(in.display());
  if (in.random_seed() >= 0) s.set_random_seed(static_cast<std::uint64_t>(in.random_seed()));
  if (in.clip_gradients() > 0) {  // Caffe clips the sum over iter_size, ruche the mean
    s.set_clip_grad_norm(in.clip_gradients() / static_cast<float>(in.iter_size()));
  }
  if (in.test_interval() > 0) {
    s.set_eval_every_steps(in.test_interval());
    if (in.test_initialization()) {
      report->push_back(where +
                        ": test_initialization: ruche does not validate before the "
                        "first step");
    }
  }
  if (in.snapshot() > 0) s.set_checkpoint_every_steps(in.snapshot());
  const auto dropped = [&](bool has, const std::string& what) {
    if (has) report->push_back(where + ": " + what + " dropped");
  };
  dropped(in.has_net() || in.has_train_net() || in.test_net_size() > 0,
          "net (give the imported net to ruche train --net)");
  dropped(in.has_net_param() || in.has_train_net_param() || in.test_net_param_size() > 0,
          "net_param (an inline net: import it from a file of its own)");
  dropped(in.has_train_state(), "train_state (the import reads the net at phase TRAIN)");
  dropped(in.test_state_size() > 0, "test_state (ruche validates with the training net)");
  dropped(in.test_iter_size() > 0, "test_iter (ruche validates the whole validation split)");
  dropped(in.has_test_compute_loss(), "test_compute_loss (ruche always reports the val loss)");
  dropped(in.has_snapshot_prefix(), "snapshot_prefix (checkpoints go to RUN/ckpt)");
  dropped(in.has_snapshot_diff() || in.has_snapshot_format(),
          "snapshot_diff/snapshot_format (ruche's sharded checkpoints; RUN/final.npz)");
  dropped(in.has_snapshot_after_train(), "snapshot_after_train (ruche always saves at the end)");
  dropped(in.has_solver_mode() || in.has_device_id(),
          "solver_mode/device_id (ruche train --device)");
  dropped(in.has_average_loss(),
          "average_loss (the progress line averages over the display interval)");
  dropped(in.has_debug_info(), "debug_info");
  dropped(in.has_layer_wise_reduce(), "layer_wise_reduce (ruche's buckets: --bucket-mb)");
  dropped(in.weights_size() > 0, "weights (give them to ruche import caffe --weights)");
}

}  // namespace

proto::SolverParameter caffe_solver_from_text(const std::string& text, const std::string& where,
                                              std::vector<std::string>* report) {
  cf::SolverParameter in;
  parse_prototxt(text, where, in);
  proto::SolverParameter s;
  map_optimizer(in, where, s, report);
  map_lr_policy(in, where, s, report);
  map_cadences(in, where, s, report);
  return s;
}

}  // namespace ruche
