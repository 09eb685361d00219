// Reducer: averages the flat gradient buffer across ranks in buckets while backward still runs
// (DESIGN.md, One step; PyTorch DDP's reducer). Buckets are ranges of the buffer cut at tensor
// boundaries, planned once from the tensor layout alone, so every rank has the same plan; they
// are launched strictly in order, each as soon as all its gradients are final.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "engine/tensor/tensor.h"

namespace ruche {

struct ReducerOptions {
  std::int64_t bucket_bytes = 25 << 20;       // --bucket-mb
  std::int64_t first_bucket_bytes = 1 << 20;  // small, so communication starts early
};

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
  // Gradients in [begin, end) are final for this step (Net::set_grad_ready_hook). Launches every
  // bucket that is now complete and whose predecessors have all been launched.
  void mark_ready(std::int64_t begin, std::int64_t end);
  // Waits for every bucket: afterwards grads hold the average over ranks. Throws when a gradient
  // was never marked (a bug: no rank may skip a bucket), naming the bucket. Resets for the next
  // step.
  void finish();

 private:
  Communicator& comm_;
  Tensor grads_;
  std::vector<GradRange> buckets_;
  std::vector<std::int64_t> pending_;  // elements of each bucket not yet final
  std::vector<Work> work_;             // one per launched bucket
  std::size_t launched_ = 0;
};

}  // namespace ruche
