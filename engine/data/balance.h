// Class imbalance on the training split: which samples a balanced epoch visits (--balance
// over|under) and the per-class loss weights (--class-weights auto|w0,w1,...). Both count the
// training split only: validation and test keep the distribution they have.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/rng/philox.h"

namespace ruche {

enum class BalanceMode {
  none,   // every sample once
  over,   // every class as many times as the largest: each sample floor(max/n) or one more times
  under,  // every class as many times as the smallest: a fresh subset of the others each epoch
};

// "none", "over" or "under"; anything else is an error naming them.
BalanceMode parse_balance_mode(const std::string& text);

// The labels of every sample of d, in order.
std::vector<std::int32_t> dataset_labels(const Dataset& d);

// Samples per class (classes entries).
std::vector<std::int64_t> class_counts(const std::vector<std::int32_t>& labels, int classes);

// One balanced epoch as a multiset of indices into `labels`, ascending: each class present
// contributes the same count (the largest class's for over, the smallest's for under); classes
// with no sample contribute none. Which samples repeat (over) or stay out (under) is drawn from
// `stream`, so it depends on the seed and epoch only, never on the world size.
std::vector<std::int64_t> balanced_indices(const std::vector<std::int32_t>& labels, int classes,
                                           BalanceMode mode, const RngStream& stream);

// sklearn's "balanced": n_samples / (n_classes * count_c), counted on `labels`; a class with no
// sample is an error (its weight would be infinite).
std::vector<float> balanced_class_weights(const std::vector<std::int32_t>& labels, int classes);

// --class-weights: "auto" (balanced_class_weights of the training labels) or one positive
// number per class, comma-separated.
std::vector<float> parse_class_weights(const std::string& text, int classes,
                                       const std::vector<std::int32_t>& train_labels);

}  // namespace ruche
