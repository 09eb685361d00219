// DistributedSampler: a permutation per epoch, ranks disjoint and covering, order independent of
// the world size, padding by wrapping, drop_last.
#include "engine/data/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

namespace ruche {
namespace {

std::vector<std::int64_t> indices(const DistributedSampler& s, std::uint32_t epoch) {
  std::vector<std::int64_t> out;
  s.rank_indices(epoch, &out);
  return out;
}

TEST(Sampler, EachEpochIsAPermutation) {
  DistributedSampler s(1000, 0, 1, {.seed = 5});
  const auto e0 = indices(s, 0), e1 = indices(s, 1);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(e0, indices(s, 0));
  for (const auto& e : {e0, e1}) {
    std::vector<std::int64_t> sorted = e;
    std::sort(sorted.begin(), sorted.end());
    for (std::int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[static_cast<std::size_t>(i)], i);
  }
  // Not the identity, and a different seed gives a different order.
  std::vector<std::int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(e0, identity);
  EXPECT_NE(e0, indices(DistributedSampler(1000, 0, 1, {.seed = 6}), 0));
}

TEST(Sampler, NoShuffleIsIdentityOrder) {
  DistributedSampler s(10, 1, 3, {.shuffle = false});
  EXPECT_EQ(indices(s, 4), (std::vector<std::int64_t>{1, 4, 7, 0}));  // padded with 0
}

TEST(Sampler, RanksAreDisjointAndCoverTheEpoch) {
  const std::int64_t n = 1003;
  for (int world : {1, 2, 3, 4, 8}) {
    SCOPED_TRACE(world);
    std::vector<int> seen(n);
    std::int64_t per_rank = -1;
    for (int r = 0; r < world; ++r) {
      DistributedSampler s(n, r, world, {.seed = 9});
      const auto idx = indices(s, 2);
      if (per_rank < 0) per_rank = static_cast<std::int64_t>(idx.size());
      EXPECT_EQ(static_cast<std::int64_t>(idx.size()), per_rank) << "ranks run the same steps";
      for (std::int64_t i : idx) ++seen[static_cast<std::size_t>(i)];
    }
    EXPECT_EQ(per_rank, (n + world - 1) / world);
    const std::int64_t padding = per_rank * world - n;
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 0), 0) << "every sample is seen";
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 2), padding) << "only the padding repeats";
  }
}

TEST(Sampler, OrderDoesNotDependOnWorldSize) {
  const std::int64_t n = 96;  // divisible by 1, 2, 3, 4: no padding
  const auto order = DistributedSampler(n, 0, 1, {.seed = 3}).epoch_order(7);
  for (int world : {2, 3, 4}) {
    std::vector<std::int64_t> interleaved(n);
    for (int r = 0; r < world; ++r) {
      const auto idx = indices(DistributedSampler(n, r, world, {.seed = 3}), 7);
      for (std::size_t k = 0; k < idx.size(); ++k) interleaved[k * world + r] = idx[k];
    }
    EXPECT_EQ(interleaved, order) << "world " << world;
  }
}

TEST(Sampler, PaddingWrapsAroundTheOrder) {
  DistributedSampler r3(5, 3, 4, {.seed = 1});  // positions 3 and 7 -> 7 wraps to 2
  const auto order = r3.epoch_order(0);
  EXPECT_EQ(indices(r3, 0), (std::vector<std::int64_t>{order[3], order[2]}));
  // More ranks than samples: padding wraps more than once.
  DistributedSampler r6(2, 5, 7, {.seed = 1});
  EXPECT_EQ(indices(r6, 0), (std::vector<std::int64_t>{r6.epoch_order(0)[1]}));
}

TEST(Sampler, DropLastCutsTheTail) {
  DistributedSampler s(10, 2, 3, {.shuffle = false, .drop_last = true});
  EXPECT_EQ(s.num_samples(), 3);
  EXPECT_EQ(indices(s, 0), (std::vector<std::int64_t>{2, 5, 8}));
}

}  // namespace
}  // namespace ruche
