#include "engine/train/task.h"

#include <algorithm>
#include <cstdlib>

#include "engine/error.h"

namespace ruche {

const char* task_name(Task task) {
  switch (task) {
    case Task::classification: return "classification";
    case Task::regression: return "regression";
    case Task::reconstruction: return "reconstruction";
  }
  return "?";
}

bool is_float_target_loss(const std::string& type) {
  return type == "EuclideanLoss" || type == "L1Loss" || type == "SmoothL1Loss" ||
         type == "SigmoidCrossEntropyLoss";
}

std::string loss_type(const proto::NetParameter& net) {
  // The main head's: the loss with the highest loss_weight (the first of equal ones), as Net picks.
  std::string type;
  float heaviest = -1.0f;
  for (const auto& layer : net.layer()) {
    if (layer.type() == "SoftmaxWithLoss" || is_float_target_loss(layer.type())) {
      const float weight = layer.loss_weight_size() ? layer.loss_weight(0) : 1.0f;
      if (weight > heaviest) {
        heaviest = weight;
        type = layer.type();
      }
    }
  }
  return type;
}

Task task_of(const proto::NetParameter& net, const proto::SolverParameter& solver) {
  const std::string loss = loss_type(net);
  if (is_float_target_loss(loss)) {
    // The only float target the loaders make is the input itself (--reconstruct).
    RUCHE_REQUIRE(solver.reconstruct())
        << "the net's loss is " << loss << ", a loss against a float target (" 
        << (loss == "SigmoidCrossEntropyLoss" ? "multi-label 0/1 per class" : "regression")
        << "); the data's labels are classes, and float targets from an npz y are not built "
        << "yet. Give --reconstruct to make the target the input itself";
    return Task::reconstruction;
  }
  RUCHE_REQUIRE(!solver.reconstruct())
      << "--reconstruct makes the target the input, but the net's loss is "
      << (loss.empty() ? std::string("missing") : loss)
      << "; end the net with EuclideanLoss, L1Loss, SmoothL1Loss or SigmoidCrossEntropyLoss "
      << "(bottoms: the reconstruction, \"label\"), or use --model conv_autoencoder or "
      << "mlp_autoencoder";
  return Task::classification;
}

std::string monitor_of(Task task, const proto::SolverParameter& solver) {
  if (task == Task::classification) return solver.monitor();
  RUCHE_REQUIRE(!solver.has_monitor() || solver.monitor() == "val_loss")
      << "monitor " << solver.monitor() << ": a " << task_name(task)
      << " run has no accuracy; monitor val_loss";
  return "val_loss";
}

std::vector<int> parse_class_list(const std::string& text, const std::string& flag) {
  std::vector<int> classes;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    char* end = nullptr;
    const long c = std::strtol(item.c_str(), &end, 10);
    RUCHE_REQUIRE(!item.empty() && *end == '\0' && c >= 0)
        << flag << " " << text << ": expected class indices such as 0,2,3";
    classes.push_back(static_cast<int>(c));
    at = comma + 1;
  }
  return classes;
}

}  // namespace ruche
