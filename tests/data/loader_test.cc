// BatchLoader: every sample once per epoch in the sampler's order, partial batches, resume,
// thread counts, errors from the producer, clean shutdown.
#include "engine/data/loader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "engine/data/in_memory.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

// n vector samples [2] holding (i, -i), label i % 5: a batch shows which indices it holds.
DatasetPtr numbered(std::int64_t n) {
  InMemoryData d;
  d.kind = "test";
  d.sample_shape = Shape{2};
  for (std::int64_t i = 0; i < n; ++i) {
    d.f32.push_back(static_cast<float>(i));
    d.f32.push_back(-static_cast<float>(i));
    d.labels.push_back(static_cast<std::int32_t>(i % 5));
  }
  return std::make_shared<InMemoryDataset>(std::move(d), "numbered");
}

// Runs one epoch and returns the sample indices in the order next() gave them.
std::vector<std::int64_t> run_epoch(BatchLoader& loader, std::uint32_t epoch, std::int64_t step = 0,
                                    std::vector<std::int64_t>* counts = nullptr) {
  Tensor x = Tensor::empty(loader.batch_shape());
  Tensor y = Tensor::empty({loader.batch_shape()[0]}, DType::i32);
  std::vector<std::int64_t> seen;
  loader.start_epoch(epoch, step);
  while (const std::int64_t n = loader.next(x, y)) {
    if (counts) counts->push_back(n);
    const float* px = x.data<float>();
    const std::int32_t* py = y.data<std::int32_t>();
    for (std::int64_t j = 0; j < n; ++j) {
      const auto i = static_cast<std::int64_t>(px[2 * j]);
      EXPECT_EQ(px[2 * j + 1], -px[2 * j]);
      EXPECT_EQ(py[j], i % 5);
      seen.push_back(i);
    }
  }
  EXPECT_EQ(loader.next(x, y), 0) << "the end of an epoch stays the end";
  return seen;
}

LoaderOptions plain(std::int64_t batch, bool drop_last, int threads = 1) {
  LoaderOptions o;
  o.batch_size = batch;
  o.drop_last = drop_last;
  o.threads = threads;
  return o;
}

TEST(Loader, EverySampleOncePerEpochInSamplerOrder) {
  const DatasetPtr d = numbered(100);
  DistributedSampler sampler(100, 0, 1, {.seed = 4});
  BatchLoader loader(d, sampler, plain(10, true));
  EXPECT_EQ(loader.steps_per_epoch(), 10);
  for (std::uint32_t epoch : {0u, 1u}) {
    std::vector<std::int64_t> want;
    sampler.rank_indices(epoch, &want);
    EXPECT_EQ(run_epoch(loader, epoch), want);
  }
}

TEST(Loader, LastPartialBatchDroppedForTrainingKeptForEvaluation) {
  const DatasetPtr d = numbered(23);
  DistributedSampler sampler(23, 0, 1, {.shuffle = false});
  BatchLoader train(d, sampler, plain(5, true));
  std::vector<std::int64_t> counts;
  EXPECT_EQ(run_epoch(train, 0, 0, &counts).size(), 20u);
  EXPECT_EQ(counts, (std::vector<std::int64_t>{5, 5, 5, 5}));
  BatchLoader eval(d, sampler, plain(5, false));
  counts.clear();
  const auto seen = run_epoch(eval, 0, 0, &counts);
  EXPECT_EQ(counts, (std::vector<std::int64_t>{5, 5, 5, 5, 3}));
  ASSERT_EQ(seen.size(), 23u);
  for (std::int64_t i = 0; i < 23; ++i) EXPECT_EQ(seen[static_cast<std::size_t>(i)], i);
}

TEST(Loader, SameBatchesWithAnyThreadCount) {
  const DatasetPtr d = numbered(257);
  DistributedSampler sampler(257, 1, 2, {.seed = 8});
  BatchLoader one(d, sampler, plain(7, false, 1));
  BatchLoader four(d, sampler, plain(7, false, 4));
  for (std::uint32_t epoch : {0u, 5u}) EXPECT_EQ(run_epoch(one, epoch), run_epoch(four, epoch));
}

TEST(Loader, ResumesAtASavedPosition) {
  const DatasetPtr d = numbered(60);
  DistributedSampler sampler(60, 0, 1, {.seed = 2});
  BatchLoader loader(d, sampler, plain(6, true, 2));
  const auto full = run_epoch(loader, 3);
  Tensor x = Tensor::empty(loader.batch_shape()), y = Tensor::empty({6}, DType::i32);
  loader.start_epoch(3);
  for (int i = 0; i < 4; ++i) loader.next(x, y);
  const LoaderPosition at = loader.position();
  EXPECT_EQ(at.epoch, 3u);
  EXPECT_EQ(at.step, 4);
  BatchLoader resumed(d, sampler, plain(6, true, 3));
  const auto rest = run_epoch(resumed, at.epoch, at.step);
  EXPECT_EQ(rest, std::vector<std::int64_t>(full.begin() + 24, full.end()));
}

TEST(Loader, AugmentedBatchesAreDeterministic) {
  InMemoryData d;
  d.kind = "test";
  d.sample_shape = Shape{1, 8, 8};
  for (int i = 0; i < 40 * 64; ++i) d.u8.push_back(static_cast<std::uint8_t>(i * 31));
  for (int i = 0; i < 40; ++i) d.labels.push_back(i % 2);
  const DatasetPtr ds = std::make_shared<InMemoryDataset>(std::move(d), "images");
  LoaderOptions o = plain(8, true, 2);
  o.transform.norm = {{0.5f}, {0.25f}};
  o.transform.augment.erase_p = 0.5f;
  DistributedSampler sampler(40, 0, 1, {.seed = 1});
  auto batches = [&](int threads) {
    o.threads = threads;
    BatchLoader loader(ds, sampler, o);
    Tensor x = Tensor::empty(loader.batch_shape()), y = Tensor::empty({8}, DType::i32);
    loader.start_epoch(2);
    std::vector<float> all;
    while (loader.next(x, y)) {
      const auto v = x.to_vector<float>();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  EXPECT_EQ(batches(1), batches(3));
}

// A dataset whose read() throws at one index.
class Faulty : public Dataset {
 public:
  explicit Faulty(DatasetPtr base) : base_(std::move(base)) {}
  std::int64_t size() const override { return base_->size(); }
  const Shape& sample_shape() const override { return base_->sample_shape(); }
  int num_classes() const override { return base_->num_classes(); }
  const std::vector<std::string>& class_names() const override { return base_->class_names(); }
  const std::string& kind() const override { return base_->kind(); }
  std::int32_t label(std::int64_t i) const override { return base_->label(i); }
  void read(std::int64_t i, float* out) const override {
    if (i == 13) throw Error("sample 13 is unreadable");
    base_->read(i, out);
  }

 private:
  DatasetPtr base_;
};

// Counts read() calls: shows how far the producer has run ahead of next().
class Counting : public Faulty {
 public:
  using Faulty::Faulty;
  void read(std::int64_t i, float* out) const override {
    ++reads;
    Faulty::read(i, out);
  }
  mutable std::atomic<int> reads{0};
};

TEST(Loader, PrefetchesWhileTheStepRuns) {
  const auto d = std::make_shared<Counting>(numbered(12));
  BatchLoader loader(d, DistributedSampler(12, 0, 1, {.shuffle = false}), plain(4, true));
  Tensor x = Tensor::empty(loader.batch_shape()), y = Tensor::empty({4}, DType::i32);
  loader.start_epoch(0);
  ASSERT_EQ(loader.next(x, y), 4);
  // With no further next(), the producer fills the two free buffers: batches 1 and 2.
  for (int i = 0; i < 3000 && d->reads < 12; ++i) {  // up to 30 s: a guard, not a speed check
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(d->reads, 12);
}

TEST(Loader, ProducerErrorsAreRethrownInNext) {
  const DatasetPtr d = std::make_shared<Faulty>(numbered(40));
  BatchLoader loader(d, DistributedSampler(40, 0, 1, {.shuffle = false}), plain(4, true, 2));
  Tensor x = Tensor::empty(loader.batch_shape()), y = Tensor::empty({4}, DType::i32);
  loader.start_epoch(0);
  std::string error;
  int good = 0;
  try {
    while (loader.next(x, y)) ++good;
  } catch (const Error& e) {
    error = e.what();
  }
  EXPECT_EQ(error, "sample 13 is unreadable");
  EXPECT_LE(good, 3);  // batches 0..2 may come before batch 3 (samples 12..15) fails
}

TEST(Loader, StopsCleanlyMidEpochAndAcrossRestarts) {
  const DatasetPtr d = numbered(1000);
  DistributedSampler sampler(1000, 0, 1, {.seed = 3});
  for (int round = 0; round < 20; ++round) {
    BatchLoader loader(d, sampler, plain(10, true, 3));
    Tensor x = Tensor::empty(loader.batch_shape()), y = Tensor::empty({10}, DType::i32);
    loader.start_epoch(0);
    loader.next(x, y);
    loader.start_epoch(1, 50);  // restart with threads in flight
    loader.next(x, y);
    // The destructor stops the producers while they wait on full buffers.
  }
}

TEST(Loader, WrongTensorsAndBatchTooLarge) {
  const DatasetPtr d = numbered(10);
  DistributedSampler sampler(10, 0, 2, {});
  EXPECT_NE(testing::error_of([&] {
              BatchLoader(d, sampler, plain(8, true));
            }).find("--batch-size 8 is larger than the 5 samples each rank has per epoch"),
            std::string::npos);
  BatchLoader loader(d, sampler, plain(2, true));
  loader.start_epoch(0);
  Tensor x = Tensor::empty({3, 2}), y = Tensor::empty({2}, DType::i32);
  EXPECT_THROW(loader.next(x, y), Error);
}

}  // namespace
}  // namespace ruche
