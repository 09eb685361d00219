// The order samples are visited in, with torch.utils.data.DistributedSampler's semantics.
// Each epoch is one permutation of the whole dataset, from Philox keyed by
// (seed, RngPurpose::sampler, epoch) (the identity without shuffle), so it does not depend on
// the world size. It is padded by wrapping around to a multiple of the world size (or cut to
// one, with drop_last), and rank r takes positions r, r + world, r + 2 world, ...: every rank
// gets the same number of samples, hence runs the same number of steps.
// With a balance mode (--balance over|under) the epoch is a balanced multiset of indices
// (balanced_indices, drawn from the same seed and epoch) shuffled the same way, then padded and
// split over the ranks as above: the epoch's samples are the same whatever the world size.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/data/balance.h"
#include "engine/rng/philox.h"

namespace ruche {

// Fisher-Yates on v, drawing from stream s (two 32-bit words per swap).
void shuffle_in_place(std::vector<std::int64_t>& v, const RngStream& s);

struct SamplerOptions {
  bool shuffle = true;
  bool drop_last = false;  // cut the tail instead of padding it
  // false (evaluation): neither pad nor cut; rank r takes positions r, r + world, ... below the
  // dataset size, so ranks may differ by one sample and every sample is counted exactly once.
  bool pad = true;
  std::uint64_t seed = 1;
  BalanceMode balance = BalanceMode::none;
  std::shared_ptr<const std::vector<std::int32_t>> labels = nullptr;  // each sample's; to balance
  int classes = 0;
};

class DistributedSampler {
 public:
  DistributedSampler(std::int64_t dataset_size, int rank, int world, SamplerOptions options = {});

  // The whole epoch's permutation of [0, dataset_size) (of the balanced multiset when
  // balancing), before padding and rank slicing.
  std::vector<std::int64_t> epoch_order(std::uint32_t epoch) const;
  // This rank's indices for the epoch (num_samples() of them); fills `out` (reusing it).
  void rank_indices(std::uint32_t epoch, std::vector<std::int64_t>* out) const;

  std::int64_t num_samples() const { return num_samples_; }  // per rank per epoch
  std::int64_t dataset_size() const { return size_; }
  std::int64_t epoch_size() const { return epoch_size_; }  // samples in an epoch, all ranks
  int rank() const { return rank_; }
  int world() const { return world_; }

 private:
  std::int64_t size_;
  std::int64_t epoch_size_;  // size_, or the balanced multiset's size
  int rank_, world_;
  SamplerOptions options_;
  std::int64_t num_samples_;
};

}  // namespace ruche
