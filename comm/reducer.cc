#include "comm/reducer.h"

#include <algorithm>

namespace ruche {

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
      buckets_(plan_buckets(tensors, grads_.dtype(), options)) {
  RUCHE_CHECK(buckets_.empty() || buckets_.back().end == grads_.numel())
      << "the gradient tensors cover " << buckets_.back().end << " of " << grads_.numel()
      << " elements";
  pending_.resize(buckets_.size());
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    pending_[b] = buckets_[b].end - buckets_[b].begin;
  }
  work_.resize(buckets_.size());
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
  while (launched_ < buckets_.size() && pending_[launched_] == 0) {
    const GradRange& r = buckets_[launched_];
    work_[launched_] = comm_.all_reduce(BufferView::of(grads_.narrow(0, r.begin, r.end - r.begin)),
                                        ReduceOp::avg);
    ++launched_;
  }
}

void Reducer::finish() {
  RUCHE_CHECK(launched_ == buckets_.size())
      << "bucket " << launched_ << " of " << buckets_.size() << " (elements ["
      << buckets_[launched_].begin << ", " << buckets_[launched_].end
      << ")) never had all its gradients marked ready";
  for (Work& w : work_) w.wait();
  launched_ = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    pending_[b] = buckets_[b].end - buckets_[b].begin;
  }
}

}  // namespace ruche
