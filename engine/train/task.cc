#include "engine/train/task.h"

#include <algorithm>
#include <cstdlib>

#include "engine/error.h"

namespace ruche {

const char* task_name(Task task) {
  switch (task) {
    case Task::classification:
      return "classification";
    case Task::regression:
      return "regression";
    case Task::reconstruction:
      return "reconstruction";
  }
  return "?";
}

bool is_float_target_loss(const std::string& type) {
  return type == "EuclideanLoss" || type == "L1Loss" || type == "SmoothL1Loss" ||
         type == "SigmoidCrossEntropyLoss";
}

namespace {

// The main head: the loss with the highest loss_weight (the first of equal ones), as Net picks.
const proto::LayerParameter* main_loss(const proto::NetParameter& net) {
  const proto::LayerParameter* main = nullptr;
  float heaviest = -1.0f;
  for (const auto& layer : net.layer()) {
    if (layer.type() == "SoftmaxWithLoss" || is_float_target_loss(layer.type())) {
      const float weight = layer.loss_weight_size() ? layer.loss_weight(0) : 1.0f;
      if (weight > heaviest) {
        heaviest = weight;
        main = &layer;
      }
    }
  }
  return main;
}

}  // namespace

std::string loss_type(const proto::NetParameter& net) {
  const proto::LayerParameter* main = main_loss(net);
  return main ? main->type() : "";
}

std::optional<std::int32_t> ignore_label_of(const proto::NetParameter& net) {
  const proto::LayerParameter* main = main_loss(net);
  if (!main || !main->loss_param().has_ignore_label()) return std::nullopt;
  return main->loss_param().ignore_label();
}

Task task_of(const proto::NetParameter& net, const proto::SolverParameter& solver,
             bool float_targets) {
  const std::string loss = loss_type(net);
  if (is_float_target_loss(loss)) {
    if (solver.reconstruct()) return Task::reconstruction;  // the input is the target
    RUCHE_REQUIRE(float_targets)
        << "the net's loss is " << loss << ", a loss against a float target ("
        << (loss == "SigmoidCrossEntropyLoss" ? "multi-label 0/1 per class" : "regression")
        << "); the data's labels are classes. Give an npz whose y is float32 [N] or [N, ...] "
        << "(the targets), or --reconstruct to make the target the input itself";
    return Task::regression;
  }
  RUCHE_REQUIRE(!solver.reconstruct())
      << "--reconstruct makes the target the input, but the net's loss is "
      << (loss.empty() ? std::string("missing") : loss)
      << "; end the net with EuclideanLoss, L1Loss, SmoothL1Loss or SigmoidCrossEntropyLoss "
      << "(bottoms: the reconstruction, \"label\"), or use --model conv_autoencoder or "
      << "mlp_autoencoder";
  RUCHE_REQUIRE(!float_targets)
      << "the data's y is float32: regression targets, but the net's loss is "
      << (loss.empty() ? std::string("missing") : loss)
      << "; end the net with EuclideanLoss, L1Loss or SmoothL1Loss (SigmoidCrossEntropyLoss for "
      << "0/1 multi-label targets), bottoms: the prediction, \"label\"; or give integer class "
      << "labels";
  return Task::classification;
}

Shape float_target_shape(const proto::NetParameter& net, const NetOptions& options) {
  proto::NetParameter without_loss = net;
  without_loss.clear_layer();
  std::string prediction;
  for (const auto& layer : net.layer()) {
    if (is_float_target_loss(layer.type()) && prediction.empty() && layer.bottom_size() > 0) {
      prediction = layer.bottom(0);
      continue;
    }
    *without_loss.add_layer() = layer;
  }
  RUCHE_REQUIRE(!prediction.empty()) << "the net has no float-target loss";
  NetOptions o = options;
  o.target_shape = Shape{};
  o.batch_size = 1;
  const std::unique_ptr<Net> built = Net::build(without_loss, o);
  const Tensor p = built->blob(prediction);
  Shape shape;
  for (int i = 1; i < p.ndim(); ++i) shape.push_back(p.size(i));
  return shape;
}

bool is_multilabel(Task task, const proto::NetParameter& net) {
  return task == Task::regression && loss_type(net) == "SigmoidCrossEntropyLoss";
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
