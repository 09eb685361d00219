// SMOTE (Chawla et al. 2002) for vector samples: each class smaller than the largest gets
// synthetic samples until it is as large, each on the segment between one of its samples and
// one of that sample's K nearest neighbours (Euclidean) within the class, at a uniform point.
// Bases go round-robin over the class; the neighbour and the point come from Philox keyed by
// (seed, sampler, synthetic number, class), so the result depends on the seed only. Images are
// refused: a point between two images is not an image of the class.
#pragma once

#include <cstdint>

#include "engine/data/dataset.h"

namespace ruche {

// The training split's samples in order, then the synthetic ones (class by class).
DatasetPtr smote_balance(const Dataset& train, int k, std::uint64_t seed);

}  // namespace ruche
