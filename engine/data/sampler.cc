#include "engine/data/sampler.h"

#include <numeric>
#include <utility>

#include "engine/error.h"

namespace ruche {

void shuffle_in_place(std::vector<std::int64_t>& v, const RngStream& s) {
  // Uniform j in [0, i] as the high 64 bits of a 64-bit draw times i + 1 (bias < i / 2^64).
  for (std::size_t i = v.size(); i > 1; --i) {
    const std::uint64_t pos = 2 * static_cast<std::uint64_t>(v.size() - i);
    const std::uint64_t r =
        (static_cast<std::uint64_t>(rng_bits(s, pos)) << 32) | rng_bits(s, pos + 1);
    const auto j = static_cast<std::size_t>((static_cast<unsigned __int128>(r) * i) >> 64);
    std::swap(v[i - 1], v[j]);
  }
}

DistributedSampler::DistributedSampler(std::int64_t dataset_size, int rank, int world,
                                       SamplerOptions options)
    : size_(dataset_size),
      epoch_size_(dataset_size),
      rank_(rank),
      world_(world),
      options_(std::move(options)) {
  RUCHE_CHECK(world > 0 && rank >= 0 && rank < world) << "rank " << rank << " of " << world;
  RUCHE_REQUIRE(dataset_size > 0) << "the sampler has an empty dataset";
  if (options_.balance != BalanceMode::none) {
    RUCHE_CHECK(options_.labels && static_cast<std::int64_t>(options_.labels->size()) == size_)
        << "a balanced sampler needs the label of each of its " << size_ << " samples";
    // The multiset's size is the same every epoch: only which samples repeat changes.
    epoch_size_ = static_cast<std::int64_t>(
        balanced_indices(*options_.labels, options_.classes, options_.balance, RngStream{}).size());
  }
  if (options_.drop_last) {
    num_samples_ = epoch_size_ / world;
  } else if (options_.pad) {
    num_samples_ = (epoch_size_ + world - 1) / world;
  } else {
    num_samples_ = (epoch_size_ - rank + world - 1) / world;  // may be 0 on a tiny split
    return;
  }
  RUCHE_REQUIRE(num_samples_ > 0) << epoch_size_ << " samples cannot be split over " << world
                                  << " ranks with drop_last";
}

std::vector<std::int64_t> DistributedSampler::epoch_order(std::uint32_t epoch) const {
  const RngStream stream{options_.seed, RngPurpose::sampler, epoch, 0, 0};
  std::vector<std::int64_t> order;
  if (options_.balance != BalanceMode::none) {
    order = balanced_indices(*options_.labels, options_.classes, options_.balance, stream);
  } else {
    order.resize(static_cast<std::size_t>(size_));
    std::iota(order.begin(), order.end(), 0);
  }
  if (options_.shuffle) shuffle_in_place(order, stream);
  return order;
}

void DistributedSampler::rank_indices(std::uint32_t epoch, std::vector<std::int64_t>* out) const {
  const std::vector<std::int64_t> order = epoch_order(epoch);
  out->resize(static_cast<std::size_t>(num_samples_));
  for (std::int64_t k = 0; k < num_samples_; ++k) {
    const std::int64_t position = rank_ + k * world_;  // < total; wraps only when padding
    (*out)[static_cast<std::size_t>(k)] = order[static_cast<std::size_t>(position % epoch_size_)];
  }
}

}  // namespace ruche
