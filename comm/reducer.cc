#include "comm/reducer.h"

#include <algorithm>

#include "comm/zero_plan.h"
#include "engine/tensor/half.h"

namespace ruche {

DType grad_compression_from_name(std::string_view name) {
  if (name == "none" || name == "fp32") return DType::f32;
  if (name == "fp16") return DType::f16;
  if (name == "bf16") return DType::bf16;
  RUCHE_FAIL() << "--grad-compression: expected none, fp16 or bf16, got '" << name << "'";
  return DType::f32;
}

std::vector<GradRange> plan_buckets(std::vector<GradRange> tensors, DType dtype,
                                    const ReducerOptions& options) {
  RUCHE_REQUIRE(options.bucket_bytes > 0 && options.first_bucket_bytes > 0)
      << "bucket sizes must be positive (bucket " << options.bucket_bytes << " bytes, first "
      << options.first_bucket_bytes << ")";
  std::sort(tensors.begin(), tensors.end(),
            [](const GradRange& a, const GradRange& b) { return a.begin < b.begin; });
  const auto esize = static_cast<std::int64_t>(dtype_size(dtype));
  std::vector<GradRange> buckets;
  GradRange current;
  for (const GradRange& t : tensors) {
    RUCHE_CHECK(t.begin == current.end && t.end > t.begin)
        << "gradient tensors must tile the buffer: [" << t.begin << ", " << t.end << ") after "
        << current.end;
    current.end = t.end;
    const std::int64_t cap = buckets.empty() ? options.first_bucket_bytes : options.bucket_bytes;
    if ((current.end - current.begin) * esize >= cap) {
      buckets.push_back(current);
      current = {current.end, current.end};
    }
  }
  if (current.end > current.begin) buckets.push_back(current);
  return buckets;
}

Reducer::Reducer(Communicator& comm, Tensor grads, const std::vector<GradRange>& tensors,
                 const ReducerOptions& options)
    : comm_(comm),
      grads_(std::move(grads)),
      wire_(options.compression),
      buckets_(plan_buckets(tensors, grads_.dtype(), options)) {
  RUCHE_CHECK(buckets_.empty() || buckets_.back().end == grads_.numel())
      << "the gradient tensors cover " << buckets_.back().end << " of " << grads_.numel()
      << " elements";
  RUCHE_REQUIRE(wire_ == DType::f32 || wire_ == DType::f16 || wire_ == DType::bf16)
      << "gradient compression: expected f32 (none), f16 or bf16, got " << dtype_name(wire_);
  if (wire_ != DType::f32) {
    RUCHE_REQUIRE(grads_.dtype() == DType::f32 && grads_.device().is_cpu())
        << "gradient compression takes f32 gradients in host memory, got " << grads_.str();
    narrowed_.resize(static_cast<std::size_t>(grads_.numel()));
  }
  pending_.resize(buckets_.size());
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    pending_[b] = buckets_[b].end - buckets_[b].begin;
    std::string label = "gradient bucket ";
    label.append(std::to_string(b + 1)).append(" of ").append(std::to_string(buckets_.size()));
    label.append(" (elements [").append(std::to_string(buckets_[b].begin)).append(", ");
    label.append(std::to_string(buckets_[b].end)).append("))");
    labels_.push_back(std::move(label));
  }
  work_.resize(buckets_.size());
  times_.resize(buckets_.size());
}

void Reducer::scatter_to(std::vector<GradRange> ranks, Tensor shard) {
  RUCHE_REQUIRE(wire_ == DType::f32)
      << "gradient compression does not combine with ZeRO-1's reduce-scatter yet";
  RUCHE_CHECK(static_cast<int>(ranks.size()) == comm_.size())
      << ranks.size() << " ZeRO ranges for " << comm_.size() << " ranks";
  const GradRange& mine = ranks[static_cast<std::size_t>(comm_.rank())];
  RUCHE_CHECK(shard.numel() == mine.end - mine.begin && shard.dtype() == grads_.dtype())
      << "the gradient shard " << shard.str() << " does not hold the range [" << mine.begin << ", "
      << mine.end << ")";
  ranks_ = std::move(ranks);
  shard_ = std::move(shard);
}

void Reducer::launch(std::size_t b) {
  const GradRange& r = buckets_[b];
  const std::int64_t n = r.end - r.begin;
  if (!ranks_.empty()) {
    // The bucket's pieces in rank order; this rank's lands at its place in the shard.
    std::vector<std::int64_t> counts = counts_within(ranks_, r);
    const GradRange& mine = ranks_[static_cast<std::size_t>(comm_.rank())];
    const std::int64_t into = std::clamp(r.begin, mine.begin, mine.end) - mine.begin;
    const std::int64_t count = counts[static_cast<std::size_t>(comm_.rank())];
    work_[b] = comm_.reduce_scatter_v(BufferView::of(grads_.narrow(0, r.begin, n)),
                                      BufferView::of(shard_.narrow(0, into, count)),
                                      std::move(counts), ReduceOp::avg, labels_[b]);
    return;
  }
  if (wire_ == DType::f32) {
    work_[b] =
        comm_.all_reduce(BufferView::of(grads_.narrow(0, r.begin, n)), ReduceOp::avg, labels_[b]);
    return;
  }
  // Divided before the sum, so that sum of f16 values cannot overflow where the average would not.
  std::uint16_t* wire = narrowed_.data() + r.begin;
  half::narrow(wire_, grads_.data<float>() + r.begin, wire, n,
               1.0f / static_cast<float>(comm_.size()));
  work_[b] = comm_.all_reduce({wire, wire_, n, Device::cpu()}, ReduceOp::sum, labels_[b]);
}

void Reducer::mark_ready(std::int64_t begin, std::int64_t end) {
  // The buckets [begin, end) overlaps: the first one whose end is past begin, onwards.
  auto it = std::upper_bound(buckets_.begin(), buckets_.end(), begin,
                             [](std::int64_t v, const GradRange& b) { return v < b.end; });
  for (; it != buckets_.end() && it->begin < end; ++it) {
    const auto b = static_cast<std::size_t>(it - buckets_.begin());
    pending_[b] -= std::min(end, it->end) - std::max(begin, it->begin);
    RUCHE_CHECK(pending_[b] >= 0) << "gradients of bucket " << b << " marked twice";
  }
  // Strictly in order: a complete bucket waits until every bucket before it is launched.
  std::size_t ready = launched_;
  while (ready < buckets_.size() && pending_[ready] == 0) ++ready;
  // Buckets ready together go as one group (NCCL: one launch for all of them).
  CommGroup group(comm_, ready - launched_ > 1);
  while (launched_ < ready) launch(launched_++);
  group.end();
}

void Reducer::finish() {
  RUCHE_CHECK(launched_ == buckets_.size())
      << labels_[launched_] << " never had all its gradients marked ready";
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    times_[b] = work_[b].wait();
    if (wire_ == DType::f32) continue;
    const GradRange& r = buckets_[b];
    half::widen(wire_, narrowed_.data() + r.begin, grads_.data<float>() + r.begin, r.end - r.begin);
  }
  launched_ = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    pending_[b] = buckets_[b].end - buckets_[b].begin;
  }
}

}  // namespace ruche
