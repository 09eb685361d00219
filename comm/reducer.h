// Reducer: averages the flat gradient buffer across ranks in buckets while backward still runs
// (docs/ARCHITECTURE.md, One step; PyTorch DDP's reducer). Buckets are ranges of the buffer cut at
// tensor boundaries, planned once from the tensor layout alone, so every rank has the same plan;
// they are launched strictly in order, each as soon as all its gradients are final.
//
// Compression (f16 or bf16, PyTorch DDP's fp16_compress_hook): a bucket is divided by the world
// size and rounded to 16 bits into a scratch buffer allocated once, summed in 16 bits (half the
// traffic), then widened back into the f32 gradients. The result is the same bits on every rank.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "comm/communicator.h"
#include "engine/tensor/tensor.h"

namespace ruche {

struct ReducerOptions {
  std::int64_t bucket_bytes = 25 << 20;       // --bucket-mb
  std::int64_t first_bucket_bytes = 1 << 20;  // small, so communication starts early
  // What the all-reduce carries (--grad-compression): f32 (no compression), f16 or bf16. Bucket
  // sizes above count f32 bytes either way, so the plan does not change with it.
  DType compression = DType::f32;
};

// --grad-compression: "none" or "fp32" -> f32, "fp16" -> f16, "bf16" -> bf16; else ruche::Error.
DType grad_compression_from_name(std::string_view name);

// [begin, end) elements of the gradient buffer.
struct GradRange {
  std::int64_t begin = 0, end = 0;
  bool operator==(const GradRange&) const = default;
};

// The buckets for tensors laid out at `tensors` (ranges that tile [0, G)): consecutive tensors
// join a bucket until it holds at least its cap, the first bucket's cap being the smaller one.
std::vector<GradRange> plan_buckets(std::vector<GradRange> tensors, DType dtype,
                                    const ReducerOptions& options);

class Reducer {
 public:
  // grads: the flat f32 gradient buffer; tensors: where each trainable tensor lies in it.
  Reducer(Communicator& comm, Tensor grads, const std::vector<GradRange>& tensors,
          const ReducerOptions& options = {});

  const std::vector<GradRange>& buckets() const { return buckets_; }
  // ZeRO-1: from now on each bucket is reduce-scattered instead of all-reduced over `ranks`
  // (plan_zero_ranges, one per rank): this rank receives the average of its range's part of every
  // bucket into `shard` (f32, its range's elements), and grads outside its range stay unreduced.
  // Not with compression.
  void scatter_to(std::vector<GradRange> ranks, Tensor shard);
  // Gradients in [begin, end) are final for this step (Net::set_grad_ready_hook). Launches every
  // bucket that is now complete and whose predecessors have all been launched.
  void mark_ready(std::int64_t begin, std::int64_t end);
  // Waits for every bucket: afterwards grads hold the average over ranks. Throws when a gradient
  // was never marked (a bug: no rank may skip a bucket), naming the bucket. Resets for the next
  // step.
  void finish();
  // Each bucket's label and when its all-reduce ran in the last finished step (--timeline).
  const std::vector<std::string>& labels() const { return labels_; }
  const std::vector<CollectiveTimes>& bucket_times() const { return times_; }

 private:
  void launch(std::size_t bucket);

  Communicator& comm_;
  Tensor grads_;
  DType wire_;
  std::vector<GradRange> buckets_;
  std::vector<std::string> labels_;      // "gradient bucket 3 of 5 (elements [a, b))"
  std::vector<std::uint16_t> narrowed_;  // the 16-bit copy of grads_ when compressing
  std::vector<std::int64_t> pending_;    // elements of each bucket not yet final
  std::vector<Work> work_;               // one per launched bucket
  std::vector<CollectiveTimes> times_;   // when each bucket's all-reduce ran, last step
  std::size_t launched_ = 0;
  std::vector<GradRange> ranks_;  // ZeRO-1's ranges, when scattering
  Tensor shard_;                  // this rank's range of the averaged gradients
};

}  // namespace ruche
