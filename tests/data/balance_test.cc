// Class imbalance: balanced epochs in the DistributedSampler (over / under, across ranks),
// --class-weights (sklearn's "balanced" values, explicit lists), SMOTE for vector samples.
#include "engine/data/balance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include "engine/data/in_memory.h"
#include "engine/data/sampler.h"
#include "engine/data/smote.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

// Labels with `counts[c]` samples of class c, interleaved so classes are not contiguous.
std::vector<std::int32_t> make_labels(const std::vector<int>& counts) {
  std::vector<std::int32_t> labels;
  std::vector<int> left = counts;
  for (bool any = true; any;) {
    any = false;
    for (std::size_t c = 0; c < left.size(); ++c) {
      if (left[c]-- > 0) {
        labels.push_back(static_cast<std::int32_t>(c));
        any = true;
      }
    }
  }
  return labels;
}

SamplerOptions balanced(const std::vector<std::int32_t>& labels, int classes, BalanceMode mode) {
  SamplerOptions o;
  o.seed = 11;
  o.balance = mode;
  o.labels = std::make_shared<const std::vector<std::int32_t>>(labels);
  o.classes = classes;
  return o;
}

std::vector<std::int64_t> per_class(const std::vector<std::int64_t>& indices,
                                    const std::vector<std::int32_t>& labels, int classes) {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(classes));
  for (std::int64_t i : indices)
    ++counts[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])];
  return counts;
}

TEST(Balance, OverSamplingGivesEveryClassTheLargestCount) {
  const auto labels = make_labels({50, 7, 13});
  const DistributedSampler s(static_cast<std::int64_t>(labels.size()), 0, 1,
                             balanced(labels, 3, BalanceMode::over));
  EXPECT_EQ(s.epoch_size(), 150);
  const auto order = s.epoch_order(0);
  EXPECT_EQ(per_class(order, labels, 3), (std::vector<std::int64_t>{50, 50, 50}));
  // Every sample is visited floor(50 / n) or one more times, none left out.
  std::map<std::int64_t, int> times;
  for (std::int64_t i : order) ++times[i];
  EXPECT_EQ(times.size(), labels.size());
  for (const auto& [i, t] : times) {
    const int n = labels[static_cast<std::size_t>(i)] == 0   ? 50
                  : labels[static_cast<std::size_t>(i)] == 1 ? 7
                                                             : 13;
    EXPECT_TRUE(t == 50 / n || t == 50 / n + 1) << "sample " << i << " seen " << t << " times";
  }
  EXPECT_EQ(order, s.epoch_order(0)) << "seeded";
  EXPECT_NE(order, s.epoch_order(1)) << "a new draw each epoch";
}

TEST(Balance, UnderSamplingGivesEveryClassTheSmallestCount) {
  const auto labels = make_labels({50, 8, 13});
  const DistributedSampler s(static_cast<std::int64_t>(labels.size()), 0, 1,
                             balanced(labels, 3, BalanceMode::under));
  EXPECT_EQ(s.epoch_size(), 24);
  const auto e0 = s.epoch_order(0), e1 = s.epoch_order(1);
  EXPECT_EQ(per_class(e0, labels, 3), (std::vector<std::int64_t>{8, 8, 8}));
  auto distinct = e0;
  std::sort(distinct.begin(), distinct.end());
  EXPECT_EQ(std::unique(distinct.begin(), distinct.end()), distinct.end()) << "no repeats";
  auto s0 = e0, s1 = e1;
  std::sort(s0.begin(), s0.end());
  std::sort(s1.begin(), s1.end());
  EXPECT_NE(s0, s1) << "another subset of the large classes each epoch";
}

TEST(Balance, RanksShareOneBalancedEpochWhateverTheWorldSize) {
  const auto labels = make_labels({50, 7, 13});  // over: 150 = divisible by 1, 2, 3
  const auto n = static_cast<std::int64_t>(labels.size());
  for (BalanceMode mode : {BalanceMode::over, BalanceMode::under}) {
    const SamplerOptions o = balanced(labels, 3, mode);
    auto reference = DistributedSampler(n, 0, 1, o).epoch_order(4);
    std::sort(reference.begin(), reference.end());
    for (int world : {1, 2, 3, 4}) {
      SCOPED_TRACE(world);
      std::vector<std::int64_t> all;
      std::int64_t steps = -1;
      for (int r = 0; r < world; ++r) {
        std::vector<std::int64_t> mine;
        DistributedSampler(n, r, world, o).rank_indices(4, &mine);
        if (steps < 0) steps = static_cast<std::int64_t>(mine.size());
        EXPECT_EQ(static_cast<std::int64_t>(mine.size()), steps) << "equal steps on every rank";
        all.insert(all.end(), mine.begin(), mine.end());
      }
      const auto padding = static_cast<std::int64_t>(all.size() - reference.size());
      EXPECT_LT(padding, world);
      if (padding == 0) {
        std::sort(all.begin(), all.end());
        EXPECT_EQ(all, reference) << "the same multiset on any world size";
      }
      // Per class, equal within the padding (at most one sample per padded rank slot).
      const auto counts = per_class(all, labels, 3);
      const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
      EXPECT_LE(*hi - *lo, padding);
    }
  }
}

TEST(Balance, ClassWeightsAutoAreSklearnsBalanced) {
  const auto labels = make_labels({6, 3, 1});  // n = 10, 3 classes
  const auto w = parse_class_weights("auto", 3, labels);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_FLOAT_EQ(w[0], 10.0f / 18.0f);
  EXPECT_FLOAT_EQ(w[1], 10.0f / 9.0f);
  EXPECT_FLOAT_EQ(w[2], 10.0f / 3.0f);
  EXPECT_EQ(parse_class_weights("1,2.5,0.5", 3, labels), (std::vector<float>{1, 2.5f, 0.5f}));
  EXPECT_NE(testing::error_of([&] {
              parse_class_weights("1,2", 3, labels);
            }).find("2 weights for 3 classes"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              parse_class_weights("1,x,2", 3, labels);
            }).find("'x' is not a positive number"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              parse_class_weights("auto", 4, labels);
            }).find("class 3 has no training sample"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] { parse_balance_mode("both"); }).find("none, over or under"),
            std::string::npos);
}

// Vectors in 3-D: class c around (c, 0, 0) with counts 20, 5, 2.
std::shared_ptr<InMemoryDataset> vectors(const std::vector<int>& counts) {
  InMemoryData d;
  d.kind = "npz";
  d.sample_shape = Shape{3};
  d.labels = make_labels(counts);
  for (std::size_t i = 0; i < d.labels.size(); ++i) {
    const float u =
        rng_uniform(RngStream{5, RngPurpose::test, 0, static_cast<std::uint32_t>(i), 0}, 0);
    const float v =
        rng_uniform(RngStream{5, RngPurpose::test, 0, static_cast<std::uint32_t>(i), 0}, 1);
    d.f32.insert(d.f32.end(), {static_cast<float>(d.labels[i]) + u, v, u * v});
  }
  return std::make_shared<InMemoryDataset>(std::move(d), "test");
}

std::vector<float> row(const Dataset& d, std::int64_t i) {
  std::vector<float> x(3);
  d.read(i, x.data());
  return x;
}

float distance(const std::vector<float>& a, const std::vector<float>& b) {
  float s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s);
}

TEST(Balance, SmoteSamplesLieBetweenSameClassNeighbours) {
  const auto base = vectors({20, 5, 2});
  const int k = 2;
  const DatasetPtr out = smote_balance(*base, k, 7);
  ASSERT_EQ(out->size(), 60);
  EXPECT_EQ(per_class(
                [&] {
                  std::vector<std::int64_t> all(60);
                  for (std::int64_t i = 0; i < 60; ++i) all[static_cast<std::size_t>(i)] = i;
                  return all;
                }(),
                dataset_labels(*out), 3),
            (std::vector<std::int64_t>{20, 20, 20}));
  for (std::int64_t i = 0; i < base->size(); ++i) {
    EXPECT_EQ(row(*out, i), row(*base, i)) << "the originals come first, unchanged";
    EXPECT_EQ(out->label(i), base->label(i));
  }
  for (std::int64_t s = base->size(); s < out->size(); ++s) {
    const std::vector<float> x = row(*out, s);
    const std::int32_t c = out->label(s);
    bool on_a_segment = false;
    for (std::int64_t a = 0; a < base->size() && !on_a_segment; ++a) {
      if (base->label(a) != c) continue;
      // a's k nearest in its class
      std::vector<std::pair<float, std::int64_t>> near;
      for (std::int64_t b = 0; b < base->size(); ++b)
        if (b != a && base->label(b) == c)
          near.emplace_back(distance(row(*base, a), row(*base, b)), b);
      std::sort(near.begin(), near.end());
      for (std::size_t j = 0; j < std::min<std::size_t>(k, near.size()); ++j) {
        const auto xa = row(*base, a), xb = row(*base, near[j].second);
        if (std::abs(distance(xa, x) + distance(x, xb) - distance(xa, xb)) < 1e-5f)
          on_a_segment = true;
      }
    }
    EXPECT_TRUE(on_a_segment) << "synthetic sample " << s << " of class " << c;
  }
  const DatasetPtr again = smote_balance(*base, k, 7), other = smote_balance(*base, k, 8);
  bool differs = false;
  for (std::int64_t i = 0; i < 60; ++i) {
    EXPECT_EQ(row(*again, i), row(*out, i)) << "seeded";
    differs = differs || row(*other, i) != row(*out, i);
  }
  EXPECT_TRUE(differs) << "another seed, other points";
}

TEST(Balance, SmoteRefusesImagesAndLoneSamples) {
  InMemoryData images;
  images.kind = "fashion-mnist";
  images.sample_shape = Shape{1, 2, 2};
  images.labels = {0, 1, 1};
  images.u8.assign(12, 0);
  const InMemoryDataset d(std::move(images), "test");
  EXPECT_NE(testing::error_of([&] { smote_balance(d, 5, 1); }).find("are images [1, 2, 2]"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              smote_balance(*vectors({4, 1}), 5, 1);
            }).find("class 1 has one training sample"),
            std::string::npos);
}

}  // namespace
}  // namespace ruche
