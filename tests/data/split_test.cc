// Stratified hold-out of a validation split; Subset; normalisation values.
#include "engine/data/split.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/data/in_memory.h"
#include "engine/data/transform.h"

namespace ruche {
namespace {

// n samples of [1, 2, 2]; class of sample i from `labels`; pixel value i % 256.
DatasetPtr labelled(const std::vector<std::int32_t>& labels) {
  InMemoryData d;
  d.kind = "test";
  d.sample_shape = Shape{1, 2, 2};
  for (std::size_t i = 0; i < labels.size(); ++i)
    d.u8.insert(d.u8.end(), 4, static_cast<std::uint8_t>(i % 256));
  d.labels = labels;
  return std::make_shared<InMemoryDataset>(std::move(d), "test data");
}

// Unbalanced classes: 0 has 500 samples, 1 has 300, 2 has 200 (interleaved).
std::vector<std::int32_t> unbalanced() {
  std::vector<std::int32_t> labels;
  labels.reserve(1000);
  for (int i = 0; i < 1000; ++i) labels.push_back(i % 10 < 5 ? 0 : i % 10 < 8 ? 1 : 2);
  return labels;
}

TEST(Split, StratifiedProportionsPerClass) {
  const DatasetPtr d = labelled(unbalanced());
  const DataSplits s = make_splits({d, nullptr}, 0.1, 7);
  ASSERT_NE(s.val, nullptr);
  EXPECT_EQ(s.train->size() + s.val->size(), 1000);
  std::vector<int> val_counts(3), train_counts(3);
  for (std::int64_t i = 0; i < s.val->size(); ++i)
    ++val_counts[static_cast<std::size_t>(s.val->label(i))];
  for (std::int64_t i = 0; i < s.train->size(); ++i)
    ++train_counts[static_cast<std::size_t>(s.train->label(i))];
  EXPECT_EQ(val_counts, (std::vector<int>{50, 30, 20}));
  EXPECT_EQ(train_counts, (std::vector<int>{450, 270, 180}));
  EXPECT_EQ(s.test, nullptr);
}

TEST(Split, DisjointCoveringAndDeterministicInTheSeed) {
  const DatasetPtr d = labelled(unbalanced());
  const HoldOut a = stratified_holdout(*d, 0.2, 11), b = stratified_holdout(*d, 0.2, 11);
  const HoldOut c = stratified_holdout(*d, 0.2, 12);
  EXPECT_EQ(a.val, b.val);
  EXPECT_EQ(a.train, b.train);
  EXPECT_NE(a.val, c.val);
  std::vector<std::int64_t> all = a.train;
  all.insert(all.end(), a.val.begin(), a.val.end());
  std::sort(all.begin(), all.end());
  for (std::int64_t i = 0; i < 1000; ++i) ASSERT_EQ(all[static_cast<std::size_t>(i)], i);
  EXPECT_TRUE(std::is_sorted(a.val.begin(), a.val.end()));
}

TEST(Split, SubsetReadsThroughToBase) {
  const DatasetPtr d = labelled(unbalanced());
  Subset s(d, {9, 2, 5});
  EXPECT_EQ(s.size(), 3);
  EXPECT_EQ(s.label(0), 2);
  EXPECT_EQ(s.label(1), 0);
  float x[4];
  s.read(2, x);
  EXPECT_FLOAT_EQ(x[3], 5.0f / 255.0f);
}

TEST(Split, ZeroFractionKeepsAllForTraining) {
  const DatasetPtr d = labelled(unbalanced());
  const DataSplits s = make_splits({d, d}, 0.0, 1);
  EXPECT_EQ(s.train, d);
  EXPECT_EQ(s.val, nullptr);
  EXPECT_EQ(s.test, d);
}

TEST(Normalization, KnownDefaults) {
  InMemoryData d;
  d.kind = "fashion-mnist";
  d.sample_shape = Shape{1, 1, 1};
  d.u8 = {0};
  d.labels = {0};
  const Normalization f = default_normalization(InMemoryDataset(d, "f"));
  EXPECT_EQ(f.mean, std::vector<float>{0.2860f});
  EXPECT_EQ(f.std, std::vector<float>{0.3530f});
  d.kind = "cifar10";
  d.sample_shape = Shape{3, 1, 1};
  d.u8 = {0, 0, 0};
  const Normalization c = default_normalization(InMemoryDataset(d, "c"));
  ASSERT_EQ(c.mean.size(), 3u);
  EXPECT_FLOAT_EQ(c.mean[0], 0.4914f);
  EXPECT_FLOAT_EQ(c.std[2], 0.2616f);
}

TEST(Normalization, ComputedPerChannelWhenUnknown) {
  // Two channels of 2 pixels over 2 samples: channel 0 holds 0.0, 0.2, 0.4, 0.6; channel 1 is 1.
  InMemoryData d;
  d.kind = "npz";
  d.sample_shape = Shape{2, 1, 2};
  d.f32 = {0.0f, 0.2f, 1.0f, 1.0f, 0.4f, 0.6f, 1.0f, 1.0f};
  d.labels = {0, 1};
  const Normalization n = default_normalization(InMemoryDataset(d, "n"));
  ASSERT_EQ(n.mean.size(), 2u);
  EXPECT_NEAR(n.mean[0], 0.3f, 1e-6);
  EXPECT_NEAR(n.std[0], std::sqrt(0.05f), 1e-6);  // population std
  EXPECT_NEAR(n.mean[1], 1.0f, 1e-6);
  EXPECT_EQ(n.std[1], 1.0f);  // a constant channel is left unscaled
}

}  // namespace
}  // namespace ruche
