// BatchRing: the machinery under BatchLoader and ShardLoader. Producer threads each fill whole
// batches (thread t fills first + t, first + t + threads, ...) into a ring of preallocated batch
// slots, so the next batch is ready before the step that consumes the current one ends; next()
// hands the batches out in order, copying a slot into the caller's tensors and freeing it. What a
// batch holds is the loader's business: it gives a fill function, the ring calls it.
//
// On a CUDA device the slots are pinned host memory, and x is copied beside compute (SideCopy)
// into one of a few device staging slots (kDeviceSlots, batch b in b % kDeviceSlots), so next()
// copies on the device only. The staging slots are not the host slots: a host slot per producer
// thread keeps the decoders busy, while device memory holds only kDeviceSlots batches (an
// ImageNet batch of 256 is 154 MB: 16 workers would hold 2.6 GB with a device copy per slot). A
// producer's error is rethrown by next(). Nothing is allocated per batch.
//
//   BatchRing ring(shape, DType::f32, threads, depth, device, [this](std::int64_t b, int t,
//                  BatchRing::Rows& rows) { ...write batch b into rows.x, rows.y; return count; });
//   ring.stop();            // before changing what fill reads
//   ring.start(first, end);  // batches first .. end - 1
//   while (std::int64_t n = ring.next(x, y)) { ... }
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/tensor/side_copy.h"
#include "engine/tensor/tensor.h"

namespace ruche {

class BatchRing {
 public:
  // Where fill writes one batch: x (host, the ring's shape and dtype), y (i32 [batch]), and, for
  // loaders that report them, each row's sample number (sized by fill; empty otherwise).
  struct Rows {
    Tensor& x;
    Tensor& y;
    std::vector<std::int64_t>& samples;
  };
  // Writes batch `batch` into rows and returns how many rows are real (the rest are left as they
  // were). `thread` (0 .. threads - 1) names the producer calling it, for per-thread scratch.
  using Fill = std::function<std::int64_t(std::int64_t batch, int thread, Rows& rows)>;

  // Device staging slots on a CUDA device: one batch in flight to the device, one being copied
  // into the step's input, one spare so a producer rarely waits.
  static constexpr int kDeviceSlots = 3;

  // x_shape is the whole batch's [batch, sample...]; depth 0: threads + 1, at least 2.
  // y_sample: one row's target; empty for an i32 class label, else f32 of that shape (a
  // reconstruction target). staging_slots: -1, kDeviceSlots on a CUDA device and none on the
  // CPU; a test may ask for CPU staging slots to exercise their reuse.
  BatchRing(const Shape& x_shape, DType x_dtype, int threads, int depth, Device device, Fill fill,
            const Shape& y_sample = {}, int staging_slots = -1);
  ~BatchRing();  // stops and joins the threads
  BatchRing(const BatchRing&) = delete;
  BatchRing& operator=(const BatchRing&) = delete;

  // Starts producing batches first .. end - 1 (stopping any in flight).
  void start(std::int64_t first, std::int64_t end);
  // Stops and joins the producers; afterwards fill is not running and what it reads may change.
  void stop();

  // Copies the next batch into x and y (and its sample numbers into *samples when given) and
  // returns how many rows are real, or 0 after the last batch. Rethrows a producer's error.
  std::int64_t next(Tensor& x, Tensor& y, std::vector<std::int64_t>* samples = nullptr);
  // The batch next() returns next: how many of [0, end) have been handed out.
  std::int64_t next_batch() const;
  bool started() const { return started_; }
  const Shape& x_shape() const { return x_shape_; }

 private:
  struct Slot {
    Tensor x, y;  // host (pinned for a CUDA ring)
    std::vector<std::int64_t> samples;
    std::int64_t batch = -1;  // which batch it holds; -1: none
    std::int64_t count = 0;
  };
  // Where batch b's x is copied beside compute: staging_[b % staging_.size()].
  struct StagingSlot {
    Tensor x, y;
    std::unique_ptr<SideCopy> side;
  };
  // Fills batches `batch`, batch + threads, ... below end_.
  void produce(std::int64_t batch, int thread);

  Shape x_shape_;
  Device device_;  // each producer thread makes it current (pinned copies go to it)
  int threads_count_;
  Fill fill_;
  std::vector<Slot> slots_;
  std::vector<StagingSlot> staging_;
  std::vector<std::thread> threads_;
  bool started_ = false;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::int64_t next_batch_ = 0;
  std::int64_t end_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace ruche
