// ZeRO stage 1's ranges (docs/ARCHITECTURE.md, The flat buffer): each rank keeps optimizer
// state for one range of the flat trainable buffer, the ranges cut at tensor
// boundaries (so per-tensor norms, LARS's, stay on one rank) and balanced by
// element count. A pure function of the tensor layout and the world size: every
// rank computes the same plan, and a checkpoint reshards by computing the plan
// of the new world.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/reducer.h"

namespace ruche {

// One range per rank, in rank order, tiling [0, G) for tensors that tile [0, G)
// (in any order). Cut k (k = 1 .. world - 1) is the tensor boundary nearest to
// k G / world, never before cut k - 1 (ties go to the earlier boundary), so
// ranks may get an empty range when tensors are few or large.
std::vector<GradRange> plan_zero_ranges(std::vector<GradRange> tensors, int world);

// The elements of `span` each rank's range holds, in rank order: the per-rank
// counts of a reduce-scatter or all-gather of `span` (they sum to its length).
std::vector<std::int64_t> counts_within(const std::vector<GradRange>& ranks, GradRange span);

}  // namespace ruche
