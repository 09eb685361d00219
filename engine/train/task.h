// What a run learns, read from the net's loss (docs/ARCHITECTURE.md, Tasks): classification
// (SoftmaxWithLoss: accuracy, top-5, confusion), regression (EuclideanLoss, L1Loss,
// SmoothL1Loss, SigmoidCrossEntropyLoss: MSE, MAE, PSNR against a float target) or
// reconstruction (such a loss whose target is the input itself, --reconstruct). The loop, validation and `ruche eval` ask the task which metrics fit.
#pragma once

#include <string>
#include <vector>

#include "engine/proto/ruche.pb.h"

namespace ruche {

enum class Task { classification, regression, reconstruction };

const char* task_name(Task task);

// The main loss layer's type (the highest loss_weight; "" when the net has none).
std::string loss_type(const proto::NetParameter& net);
// Whether `type` is a loss against a float target of the prediction's size: EuclideanLoss (MSE),
// L1Loss, SmoothL1Loss (beta 1) and SigmoidCrossEntropyLoss (BCE with logits: its bottom is
// logits, and the metrics read sigmoid(logits) as the prediction).
bool is_float_target_loss(const std::string& type);

// The task of `net` trained as `solver` says (its reconstruct field). A classification loss with
// --reconstruct, or a regression loss without a float target, is a ruche::Error that says what
// to change.
Task task_of(const proto::NetParameter& net, const proto::SolverParameter& solver);

// The early-stopping metric: the solver's monitor; for regression and reconstruction val_loss
// unless the solver names one (val_acc there is an error).
std::string monitor_of(Task task, const proto::SolverParameter& solver);

// "0,2,3": class indices (--train-classes, --normal-classes); anything else is a ruche::Error
// naming `flag`.
std::vector<int> parse_class_list(const std::string& text, const std::string& flag);

}  // namespace ruche
