// StepReadout: what the host learns of a training step, read with one wait for the device
// (docs/ARCHITECTURE.md, One step): each micro-batch's losses, its top-1 hits or regression errors
// and its deferred label checks, then the averaged gradients' sum of squares. The step's ops write
// them into a small record on the net's device as the step is queued; fetch() brings the record
// to the host once, after the gradients. On the CPU the same code copies host values.
#pragma once

#include <optional>
#include <vector>

#include "engine/graph/net.h"
#include "engine/tensor/readback.h"
#include "engine/train/data_parallel.h"
#include "engine/train/task.h"
#include "ops/ops.h"

namespace ruche {

class StepReadout {
 public:
  // task: classification counts top-1 hits of probs (the main loss's probabilities, not ignored
  // rows); regression and reconstruction sum row errors of net.output() against net.labels()
  // (sigmoid: the output holds logits). The net must outlive this.
  StepReadout(Net& net, Task task, bool sigmoid, int micro_batches, const Tensor* probs,
              std::optional<std::int32_t> ignored_label);

  // After micro-batch k (of n real rows) is queued, forward and backward: its losses, tallies and
  // checks into the record's row k.
  void record_micro_batch(int k, std::int64_t n);
  // Where DataParallel::queue_grad_sums writes the gradients' sums.
  Tensor& grad_sums() { return grad_sums_; }
  // The step's one wait. Throws the first failed deferred check (a bad label) as the forward
  // would have; otherwise returns this rank's loss, hit, error and sample sums and its NaN vote,
  // and the gradient sums.
  StepVotes fetch(ops::SumSquaresFinite& grad_sums);

 private:
  // A micro-batch's row of the record (f32): the loss, the tallies (classification: hits and
  // rows counted; else hits, squared and absolute error), each loss layer's value.
  enum Field : std::int64_t {
    loss,
    tally,
    terms = tally + 3,
    fields = terms + StepVotes::max_loss_terms
  };
  Tensor field(int k, std::int64_t at, std::int64_t width);

  Net& net_;
  Task task_;
  bool sigmoid_;
  const Tensor* probs_;
  std::int64_t ignored_;               // ops::CrossEntropyParams::ignored()
  std::vector<const Layer*> checked_;  // the layers whose forwards defer a check
  Tensor record_;                      // f32 [micro_batches * fields]
  Tensor checks_;                      // i64 [micro_batches * checked_]
  Tensor grad_sums_;                   // i64 [2]
  std::vector<std::int64_t> rows_;     // each micro-batch's n
  Readback readback_;
  int record_at_ = 0, checks_at_ = -1, sums_at_ = 0;
};

}  // namespace ruche
