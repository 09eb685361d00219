// One evaluation pass: the net in test phase over every sample of a split.
#pragma once

#include <cstdint>
#include <optional>

#include "engine/data/loader.h"
#include "engine/graph/net.h"
#include "engine/metrics/eval_accumulator.h"
#include "engine/metrics/regression.h"

namespace ruche {

// The softmax of the net's classifier (its SoftmaxWithLoss layer) after a forward; throws when
// the net has none.
const Tensor& net_probabilities(const Net& net);
// The label that counts in no accuracy or evaluation: that SoftmaxWithLoss layer's ignore_label.
std::optional<std::int32_t> net_ignored_label(const Net& net);

// The number of classes the net scores: its probabilities' width; for a deploy net (no loss),
// its output's [N, C] (or [N, C, 1, ...]) C. A net that gives no such scores is a ruche::Error.
std::int64_t probability_classes(Net& net);

// After a forward: rows [0, n) of the class probabilities, [n, C] f32 on the CPU. A deploy net's
// are its output when it ends in Softmax, else the softmax of its output (the classifier's scores).
Tensor class_probabilities(Net& net, std::int64_t n);

// Runs the loader's whole epoch `epoch` through the net (test phase), adding each batch's real
// rows to acc, less those of net_ignored_label; returns the mean negative log-likelihood of the
// true class over the rows added. A deploy net (an Input without a labels top) takes the labels
// from the loader all the same.
double evaluate(Net& net, BatchSource& loader, EvalAccumulator& acc, std::uint32_t epoch = 0);

// The same for a regression or reconstruction net: each batch's real rows of the loss's
// prediction against the target (net.labels()) go into tally; returns the mean loss per sample.
double evaluate_regression(Net& net, BatchSource& loader, RegressionTally& tally,
                           std::uint32_t epoch = 0);

// Adds rows [0, n) of the net's prediction (the loss's first bottom) against its target.
void tally_regression(Net& net, std::int64_t n, RegressionTally& tally);

}  // namespace ruche
