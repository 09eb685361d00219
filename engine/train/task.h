// What a run learns, read from the net's loss and the data (docs/ARCHITECTURE.md, Tasks):
// classification (SoftmaxWithLoss: accuracy, top-5, confusion), regression (EuclideanLoss,
// L1Loss, SmoothL1Loss against an npz's float y: MSE, MAE; SigmoidCrossEntropyLoss against a 0/1
// y [N, K] is multi-label: also the per-element accuracy at 0.5) or reconstruction (such a loss
// whose target is the input itself, --reconstruct: MSE, MAE, PSNR). The loop, validation and
// `ruche eval` ask the task which metrics fit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/graph/net.h"
#include "engine/proto/ruche.pb.h"

namespace ruche {

enum class Task { classification, regression, reconstruction };

const char* task_name(Task task);

// The main loss layer's type (the highest loss_weight; "" when the net has none).
std::string loss_type(const proto::NetParameter& net);
// The main loss's loss_param.ignore_label, when it has one: a label the data may hold that is no
// class (engine/data/open.h's DataSpec::ignore_label).
std::optional<std::int32_t> ignore_label_of(const proto::NetParameter& net);
// Whether `type` is a loss against a float target of the prediction's size: EuclideanLoss (MSE),
// L1Loss, SmoothL1Loss (beta 1) and SigmoidCrossEntropyLoss (BCE with logits: its bottom is
// logits, and the metrics read sigmoid(logits) as the prediction).
bool is_float_target_loss(const std::string& type);

// The task of `net` trained as `solver` says (its reconstruct field) on data whose targets are
// floats (`float_targets`: an npz's float y) or classes. A classification loss with
// --reconstruct or float targets, or a float-target loss with neither, is a ruche::Error that
// says what to change.
Task task_of(const proto::NetParameter& net, const proto::SolverParameter& solver,
             bool float_targets = false);

// One sample's target shape for a net with a float-target loss, as the prediction it is compared
// with (the loss's first bottom) comes out of the net built with `options` (its sample shape and
// classes): what a command that has no data (ruche time, ONNX export) gives the net as its label.
Shape float_target_shape(const proto::NetParameter& net, const NetOptions& options);

// Regression with SigmoidCrossEntropyLoss: K independent 0/1 labels per sample.
bool is_multilabel(Task task, const proto::NetParameter& net);

// The early-stopping metric: the solver's monitor; for regression and reconstruction val_loss
// unless the solver names one (val_acc there is an error).
std::string monitor_of(Task task, const proto::SolverParameter& solver);

// "0,2,3": class indices (--train-classes, --normal-classes); anything else is a ruche::Error
// naming `flag`.
std::vector<int> parse_class_list(const std::string& text, const std::string& flag);

}  // namespace ruche
