// BatchLoader: batches of (transformed) samples in the sampler's order, made ahead of time by
// background threads into a ring of preallocated batch buffers (BatchRing), so the next batch is
// ready before the step that consumes the current one ends. next() copies a finished batch into
// the caller's tensors (any device). Nothing is allocated per batch; per epoch, only the index
// list.
//
//   BatchLoader loader(splits.train, DistributedSampler(n, rank, world, {.seed = seed}), options);
//   for (epoch ...) {
//     loader.start_epoch(epoch);  // or start_epoch(saved.epoch, saved.step) on resume
//     while (std::int64_t n = loader.next(x, y)) { ... step on x, y (first n rows) ... }
//   }
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

#include "engine/data/batch_ring.h"
#include "engine/data/batch_source.h"
#include "engine/data/dataset.h"
#include "engine/data/sampler.h"
#include "engine/data/transform.h"
#include "engine/tensor/tensor.h"

namespace ruche {

struct LoaderOptions {
  std::int64_t batch_size = 64;
  bool drop_last = true;  // drop the epoch's last partial batch (training); false keeps it
  TransformOptions transform;
  // --reconstruct: y is f32 [batch_size, sample...], each sample after augmentation and before
  // noise and normalisation; else a dataset with float targets (Dataset::target_shape, an npz's
  // float y) gives f32 [batch_size, target...], cropped and flipped with the input when its
  // trailing dimensions are the input's H x W; otherwise i32 class labels [batch_size].
  bool target_is_input = false;
  int threads = 1;  // producer threads; each fills whole batches
  int depth = 0;    // batches buffered; 0: threads + 1, at least 2
  // Where next()'s tensors live. On a CUDA device the batches are made in pinned host memory and
  // copied to a device copy of each buffer beside compute (SideCopy), so next() copies on the
  // device only.
  Device device = Device::cpu();
};

// Where a loader is: what a checkpoint saves to resume exactly.
struct LoaderPosition {
  std::uint32_t epoch = 0;
  std::int64_t step = 0;  // batches of this epoch already returned by next()
};

class BatchLoader final : public BatchSource {
 public:
  BatchLoader(DatasetPtr dataset, DistributedSampler sampler, LoaderOptions options);
  ~BatchLoader() override;  // stops and joins the threads
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Starts producing epoch `epoch` from batch `step` on (stopping any epoch in flight).
  void start_epoch(std::uint32_t epoch, std::int64_t step = 0) override;

  // Copies the next batch into x (f32 [batch_size, sample...]) and y (LoaderOptions) and
  // returns how many rows are real: batch_size, fewer for a kept last batch (the rows after
  // them are left as they were), 0 at the end of the epoch. Rethrows a producer's error.
  std::int64_t next(Tensor& x, Tensor& y) override;

  std::int64_t steps_per_epoch() const override { return steps_; }
  std::int64_t steps_this_epoch() const override { return steps_ - first_step_; }
  LoaderPosition position() const;
  Shape batch_shape() const;  // [batch_size, sample...]
  // One sample's float target ([] for class labels): the input's shape with target_is_input, else
  // the dataset's target_shape.
  Shape target_shape() const;
  const Dataset& dataset() const { return *dataset_; }

 private:
  // Writes batch `batch` of the epoch into rows (BatchRing's fill); `thread` picks the scratch.
  std::int64_t fill(std::int64_t batch, int thread, BatchRing::Rows& rows);

  DatasetPtr dataset_;
  DistributedSampler sampler_;
  LoaderOptions options_;
  Transform transform_;
  std::int64_t steps_ = 0;
  std::int64_t first_step_ = 0;  // where start_epoch put the epoch

  std::vector<std::int64_t> indices_;  // this rank's samples this epoch
  std::uint32_t epoch_ = 0;
  std::vector<std::vector<float>> scratch_;         // per producer thread, for the transform
  std::vector<std::vector<float>> target_scratch_;  // per thread, a float target's augmentation
  // Test-only (RUCHE_TRACE_SAMPLES=DIR, training loaders): DIR/samples-<rank>.txt gets a line
  // "epoch E batch K world W: i1 i2 ..." for every batch next() hands out, so a test can count
  // which samples an epoch trained on across restarts and world sizes.
  std::FILE* trace_ = nullptr;
  std::unique_ptr<BatchRing> ring_;  // last: its threads read the members above
};

}  // namespace ruche
