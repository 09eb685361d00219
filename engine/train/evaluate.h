// One evaluation pass: the net in test phase over every sample of a split.
#pragma once

#include "engine/data/loader.h"
#include "engine/graph/net.h"
#include "engine/metrics/eval_accumulator.h"
#include "engine/metrics/regression.h"

namespace ruche {

// The softmax of the net's classifier (its SoftmaxWithLoss layer) after a forward; throws when
// the net has none.
const Tensor& net_probabilities(const Net& net);

// Runs the loader's whole epoch `epoch` through the net (test phase), adding each batch's real
// rows to acc; returns the mean negative log-likelihood of the true class.
double evaluate(Net& net, BatchSource& loader, EvalAccumulator& acc, std::uint32_t epoch = 0);

// The same for a regression or reconstruction net: each batch's real rows of the loss's
// prediction against the target (net.labels()) go into tally; returns the mean loss per sample.
double evaluate_regression(Net& net, BatchSource& loader, RegressionTally& tally,
                           std::uint32_t epoch = 0);

// Adds rows [0, n) of the net's prediction (the loss's first bottom) against its target.
void tally_regression(Net& net, std::int64_t n, RegressionTally& tally);

}  // namespace ruche
