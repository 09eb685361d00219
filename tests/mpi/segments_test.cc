// The segments NCCL's reduce_scatter_v / all_gather_v run one rooted call each on
// (comm/segments.h): where each rank's chunk lies, which chunks are skipped, and what bad counts
// say. Pure arithmetic; the NCCL calls themselves run on a GPU (tests/gpu/nccl_test.cc, a world
// of one).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "comm/segments.h"
#include "comm/zero_plan.h"

namespace ruche {
namespace {

using Counts = std::vector<std::int64_t>;

TEST(Segments, EachRanksChunkStartsWhereThePreviousEnds) {
  const std::vector<Segment> s = segments_of(Counts{3, 5, 2}, 3, 10, "reduce_scatter_v");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].rank, 0);
  EXPECT_EQ(s[0].offset, 0);
  EXPECT_EQ(s[0].count, 3);
  EXPECT_EQ(s[1].rank, 1);
  EXPECT_EQ(s[1].offset, 3);
  EXPECT_EQ(s[1].count, 5);
  EXPECT_EQ(s[2].rank, 2);
  EXPECT_EQ(s[2].offset, 8);
  EXPECT_EQ(s[2].count, 2);
}

TEST(Segments, EmptyChunksAreSkippedAndTheRestKeepTheirRanks) {
  // Rank 1 holds nothing of this bucket, rank 3 nothing at all: no call is rooted at them.
  const std::vector<Segment> s = segments_of(Counts{4, 0, 6, 0}, 4, 10, "all_gather_v");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].rank, 0);
  EXPECT_EQ(s[0].offset, 0);
  EXPECT_EQ(s[1].rank, 2);
  EXPECT_EQ(s[1].offset, 4);
  EXPECT_EQ(s[1].count, 6);
  EXPECT_TRUE(segments_of(Counts{0, 0}, 2, 0, "all_gather_v").empty());
}

// The Reducer's use: a bucket's counts_within a ZeRO plan. Each rank's segment must be exactly
// its range clipped to the bucket, relative to the bucket's start.
TEST(Segments, MatchTheZeroRangesWithinEveryBucket) {
  std::vector<GradRange> tensors;
  std::int64_t at = 0;
  for (const std::int64_t n : {100, 300, 50, 600, 200, 7}) {
    tensors.push_back({at, at + n});
    at += n;
  }
  for (int world = 1; world <= 5; ++world) {
    const std::vector<GradRange> ranks = plan_zero_ranges(tensors, world);
    for (const GradRange bucket : {GradRange{0, at}, GradRange{0, 400}, GradRange{400, 1050},
                                   GradRange{1050, at}, GradRange{120, 130}}) {
      const std::vector<Segment> s = segments_of(counts_within(ranks, bucket), world,
                                                 bucket.end - bucket.begin, "reduce_scatter_v");
      std::size_t next = 0;
      for (int r = 0; r < world; ++r) {
        const GradRange& mine = ranks[static_cast<std::size_t>(r)];
        const std::int64_t begin = std::max(mine.begin, bucket.begin);
        const std::int64_t end = std::min(mine.end, bucket.end);
        if (end <= begin) continue;
        ASSERT_LT(next, s.size()) << "world " << world << " rank " << r;
        EXPECT_EQ(s[next].rank, r);
        EXPECT_EQ(s[next].offset, begin - bucket.begin);
        EXPECT_EQ(s[next].count, end - begin);
        ++next;
      }
      EXPECT_EQ(next, s.size()) << "world " << world;
    }
  }
}

TEST(Segments, BadCountsNameTheCollective) {
  auto message = [](const Counts& counts, int size, std::int64_t total) -> std::string {
    try {
      segments_of(counts, size, total, "reduce_scatter_v");
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message({1, 2}, 3, 3).find("reduce_scatter_v: 2 counts for a world of 3"),
            std::string::npos);
  EXPECT_NE(message({4, -1}, 2, 3).find("rank 1's count is -1"), std::string::npos);
  EXPECT_NE(message({1, 2}, 2, 4).find("counts sum to 3 elements, the buffer holds 4"),
            std::string::npos);
}

}  // namespace
}  // namespace ruche
