// What the trainer shows in TensorBoard besides its scalars: every trainable parameter's weight
// and gradient norms (one pass over Net's param_table), their histograms, and the confusion
// matrix of a validation. Rank 0 calls these with its writer open; they read host copies.
#pragma once

#include <cstdint>

#include "comm/reducer.h"
#include "engine/graph/net.h"
#include "engine/log/tensorboard.h"
#include "engine/metrics/confusion_matrix.h"

namespace ruche {

// "weight_norm/<name>" and "grad_norm/<name>" (L2) for each trainable parameter. grads holds the
// averaged gradients of `range` of net.grads() (all of it, or under --zero 1 this rank's shard):
// parameters outside it get no gradient norm.
void log_param_norms(TensorBoardWriter& tb, Net& net, const Tensor& grads, GradRange range,
                     std::int64_t step);

// "weights/<name>" and "grads/<name>" histograms, with the same gradients as above.
void log_param_histograms(TensorBoardWriter& tb, Net& net, const Tensor& grads, GradRange range,
                          std::int64_t step);

// "<split>/confusion_matrix": the matrix as an RGB image (engine/log/confusion_image.h).
void log_confusion_image(TensorBoardWriter& tb, const std::string& split,
                         const ConfusionMatrix& confusion, std::int64_t step);

}  // namespace ruche
