// ShardLoader: batches from one split of indexed WebDataset shards (shard_index.h: written by
// `ruche convert`, or by `ruche index` for shards made elsewhere; samples and labels as
// webdataset.h says), with BatchLoader's interface (start_epoch, next(x, y),
// position, steps_per_epoch) and machinery (BatchRing: threads that each fill
// whole batches, a ring of preallocated batch buffers, pinned with a device copy
// beside compute when the device is CUDA). Each sample is read with one pread
// at its indexed offset, decoded and transformed by jpeg_to_sample.
//
// The order of an epoch, and why:
//   1. The split's shards in a seeded order (Philox keyed by seed,
//   RngPurpose::sampler, epoch),
//      concatenated: the epoch's sequence of all N samples.
//   2. The sequence cut into `world` contiguous parts of floor or ceil(N /
//   world) samples, by
//      sample offset (the index makes that possible): rank r reads part r.
//      Ranks read disjoint samples; a rank's part is a run of whole shards with
//      a partial one at each end, so each rank reads mostly sequentially, and
//      every sample is in exactly one part whatever the world size. Cutting at
//      shard boundaries instead would leave ranks unbalanced by up to a shard
//      (thousands of samples) and need padding of that size.
//   3. Each rank's part through a shuffle buffer of `shuffle_buffer` samples
//   (WebDataset's:
//      fill, then emit a random slot and refill it; drain at the end), keyed by
//      (seed, epoch, rank, leg). The buffer works on sample numbers, not
//      decoded samples, so the whole rank's sequence is known at start_epoch
//      and a position is just a count.
//   4. Training (pad = true): every rank runs ceil(max part / batch) steps of
//   full batches; a
//      rank whose part is shorter repeats the first samples of its sequence
//      (fewer than `batch`
//      + 1 repeats per rank per epoch). Every sample is seen once, plus those
//      repeats: what the trainer (full batches, equal steps on every rank)
//      needs. pad = false (evaluation): no repeats, a short last batch, and
//      ranks may differ by one step.
//
// The position (ShardPosition) is the epoch and, for each stretch of it run at
// one world size (a leg), that world size, the buffer size and how many samples
// each rank had taken. That is the per-shard offsets' equivalent: it determines
// exactly which samples were consumed (replay the legs' parts and buffers on
// sample numbers, no decoding). A resume at the same world size and buffer
// continues the same leg at exactly the next sample. On another world size a
// new leg starts: the samples the earlier legs did not consume, in the epoch's
// sequence order, cut anew into `world` parts, so the rest of the epoch still
// sees every remaining sample once. Augmentation draws from (seed,
// RngPurpose::augment, epoch, global sample number), so a sample looks the same
// whichever rank, thread or resume produces it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/data/batch_ring.h"
#include "engine/data/batch_source.h"
#include "engine/data/image_pipeline.h"
#include "engine/data/shard_index.h"
#include "engine/tensor/tensor.h"

namespace ruche {

// Where a shard loader is within an epoch; what a checkpoint stores.
struct ShardPosition {
  // A stretch of the epoch run at one world size: each of its ranks took
  // `taken` positions of its sequence (repeats included).
  struct Leg {
    std::int32_t world = 1;
    std::int64_t buffer = 0;
    std::int64_t taken = 0;
    bool operator==(const Leg&) const = default;
  };
  std::uint32_t epoch = 0;
  std::int64_t samples = 0;  // in the split: a resume on other shards is an error
  std::vector<Leg> legs;     // empty: the start of the epoch
  bool operator==(const ShardPosition&) const = default;

  // A line of text ("shards 1 epoch E samples N legs K world buffer taken
  // ..."), and back.
  std::string encode() const;
  static ShardPosition decode(const std::string& text);
};

struct ShardLoaderOptions {
  std::int64_t batch_size = 64;
  bool train = true;  // the training transform and a shuffled order; false: in
                      // order, validation
  bool pad = true;    // full batches and equal steps on every rank (see above)
  std::uint64_t seed = 1;
  std::int64_t shuffle_buffer = 4096;  // samples; 0 or 1: none (train only)
  ImageTransformOptions transform;
  // x's type: f32, normalised samples; u8, the pixels 0..255 before normalising (for a normalise
  // done on the device, a quarter of the bytes to copy).
  DType x_dtype = DType::f32;
  // transform.channels_last: NHWC batches [batch, crop, crop, 3] instead of NCHW.
  int threads = 1;  // producer threads; each decodes whole batches
  int depth = 0;    // batches buffered; 0: threads + 1, at least 2
  Device device = Device::cpu();
};

class ShardLoader final : public BatchSource {
 public:
  ShardLoader(const ShardIndex& index, const std::string& split, int rank, int world,
              const ShardLoaderOptions& options);
  ~ShardLoader() override;  // stops and joins the threads
  ShardLoader(const ShardLoader&) = delete;
  ShardLoader& operator=(const ShardLoader&) = delete;

  // Starts epoch `epoch` from its beginning, or from a saved position (its
  // epoch).
  void start_epoch(std::uint32_t epoch, std::int64_t step = 0) override;
  void start_epoch(const ShardPosition& at);
  // BatchSource: the position as ShardPosition::encode() text, and a start from it.
  std::string stream_position() const override { return position().encode(); }
  void start_from(const std::string& text) override { start_epoch(ShardPosition::decode(text)); }

  // Copies the next batch into x ([batch, 3, crop, crop] of x_dtype; [batch, crop, crop, 3] with
  // transform.channels_last) and y (i32 [batch]) and returns how many rows are real: batch_size,
  // fewer for an unpadded last batch, 0 at the end of the epoch. When `samples` is given it
  // receives each returned row's global sample number (shard order of the
  // index, then offset), or -1 for a repeat that pads the rank's last batch.
  std::int64_t next(Tensor& x, Tensor& y, std::vector<std::int64_t>* samples) {
    return ring_->next(x, y, samples);
  }
  std::int64_t next(Tensor& x, Tensor& y) override { return ring_->next(x, y); }

  // Steps of a whole epoch at this world size (every rank the same when
  // padding).
  std::int64_t steps_per_epoch() const override;
  // Steps this rank runs from where start_epoch put it to the end of the epoch.
  std::int64_t steps_this_epoch() const override { return steps_; }
  ShardPosition position() const;
  Shape batch_shape() const;
  std::int64_t split_size() const { return total_; }
  int num_classes() const { return static_cast<int>(classes_.size()); }
  const std::vector<std::string>& class_names() const { return classes_; }

  // The samples (global numbers) a position has not consumed yet, in the
  // epoch's sequence order: what the rest of the epoch reads over all ranks.
  // For tests and tools.
  std::vector<std::int64_t> remaining(const ShardPosition& at) const;

 private:
  struct Shard {
    std::string path;
    std::uint64_t end = 0;
    std::vector<std::uint64_t> offsets;
    std::int64_t base = 0;  // global number of its first sample
  };

  std::vector<std::int64_t> epoch_sequence(std::uint32_t epoch) const;
  // Rank r's sequence for a leg over `pool` (world parts, then the buffer).
  std::vector<std::int64_t> leg_sequence(const std::vector<std::int64_t>& pool, std::uint32_t epoch,
                                         std::size_t leg, const ShardPosition::Leg& l,
                                         int rank) const;
  // Replays the legs before `legs` ends; returns the samples left for the last
  // one.
  std::vector<std::int64_t> pool_after(std::uint32_t epoch,
                                       const std::vector<ShardPosition::Leg>& legs) const;
  // Writes batch `batch` of the leg into rows (BatchRing's fill).
  std::int64_t fill(std::int64_t batch, BatchRing::Rows& rows) const;
  // Decodes `sample` into row `row` of x (f32 or u8) and its label.
  void read_sample(std::int64_t sample, Tensor& x, std::int64_t row, std::int32_t* label) const;
  int shard_fd(std::size_t shard) const;

  std::vector<Shard> shards_;
  std::vector<std::string> classes_;
  std::unordered_map<std::string, int> class_of_name_;  // for labels given as names
  std::string split_;
  int rank_, world_;
  ShardLoaderOptions options_;
  std::int64_t total_ = 0;

  // The epoch in flight.
  ShardPosition start_;                 // where start_epoch put it (the current leg last)
  std::vector<std::int64_t> sequence_;  // this rank's rest of the leg; repeats as -1 - sample
  std::int64_t steps_ = 0;

  mutable std::mutex fd_mutex_;
  mutable std::vector<int> fds_;  // per shard, opened on first read; -1: not yet

  std::unique_ptr<BatchRing> ring_;  // last: its threads read the members above
};

}  // namespace ruche
