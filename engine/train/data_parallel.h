// DataParallel: what one rank's training does with the others (docs/ARCHITECTURE.md, One step).
// Every rank starts from rank 0's parameters on a net checked to be the same everywhere; gradients
// are averaged in buckets while backward runs; rank 0's batch-norm statistics are broadcast each
// step (or --sync-bn reduces the batch statistics); one control word per step makes every rank
// take the same decision; evaluation tallies are summed. Without a communicator (one process)
// every call is a cheap no-op, so the trainer has one code path.
//
// ZeRO stage 1 (--zero 1): each rank keeps optimizer state for its range of the flat trainable
// buffer only (plan_zero_ranges). The buckets are reduce-scattered as backward fills them (the
// same overlap as the all-reduce), the rank clips and updates its range (update_params(),
// update_grads(), grad_stats() all-gathers the partial sums of squares), and share_parameters()
// all-gathers the updated parameters. Same traffic as an all-reduce (a ring all-reduce is a
// reduce-scatter and an all-gather); what it gives up is overlap for the all-gather, which runs
// after the optimizer, before the next forward.
#pragma once

#include <array>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/reducer.h"
#include "comm/zero_plan.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/graph/net.h"
#include "engine/log/timeline.h"
#include "engine/metrics/eval_accumulator.h"
#include "engine/metrics/regression.h"
#include "engine/optim/grad_norm.h"
#include "ops/ops.h"

namespace ruche {

struct DataParallelOptions {
  ReducerOptions reducer;  // --bucket-mb, --grad-compression
  bool sync_bn = false;    // --sync-bn
  int zero = 0;            // --zero: 0 replicates the optimizer state, 1 shards it (ZeRO-1)
  // --comm nccl: the collectives run even in a world of one (each is then the identity), so one
  // GPU exercises the NCCL path; otherwise a world of one communicates nothing.
  bool communicate_alone = false;
};

// One rank's votes for a step, summed over ranks by DataParallel::finish_step.
struct StepVotes {
  static constexpr std::size_t max_loss_terms = 8;  // a net's first 8 loss layers are reported
  enum : std::size_t {
    nonfinite_loss,
    stop,            // SIGUSR1 / SIGTERM
    interrupt,       // SIGUSR2 / SIGINT
    checkpoint_due,  // rank 0's clock
    shard_written,   // this rank's checkpoint shard is durable (or none is in flight)
    loss_sum,
    hits,           // classification: top-1 hits
    squared_error,  // regression, reconstruction: the sums of each sample's MSE and MAE
    absolute_error,
    samples,
    labelled,    // the samples accuracy counts: all but those of the loss's ignore_label
    loss_terms,  // a net with several losses: each loss layer's value times the batch, in order
    count = loss_terms + max_loss_terms
  };
  std::array<float, count> v{};
  float& operator[](std::size_t i) { return v[i]; }
  float operator[](std::size_t i) const { return v[i]; }
};

class DataParallel {
 public:
  // comm: the ranks to train with (null: alone). The net must outlive this.
  DataParallel(Communicator* comm, Net& net, const DataParallelOptions& options);
  ~DataParallel();

  int rank() const { return comm_ ? comm_->rank() : 0; }
  int size() const { return comm_ ? comm_->size() : 1; }
  bool lead() const { return rank() == 0; }  // the rank that prints and writes files
  Communicator* communicator() const { return comm_; }
  Communicator* sync_bn() const { return options_.sync_bn ? comm_ : nullptr; }

  // Start-up: every rank must have built the same net and solver (`identity` is their text plus
  // anything else that must agree, e.g. the data's shape): a ruche::Error names the first rank
  // that differs. Then every rank takes rank 0's parameters and buffers (broadcast_state).
  void start(const std::string& identity);
  // Rank 0's parameters and buffers to every rank (e.g. after rank 0 loaded best weights).
  void broadcast_state();

  // Whether the coming backward is the step's last micro-batch, whose gradients are final and
  // reduced (DDP's no_sync for the others: --accumulate K communicates once per K).
  void reduce_next_backward(bool reduce) { reduce_ = reduce; }
  // After the step's last forward: rank 0's running statistics go to every rank (unless sync-bn),
  // overlapping with backward; every rank runs the next forward with them.
  void share_buffers();
  // After the step's last backward is queued: waits for the gradient reduction and the
  // batch-norm broadcast. grads() then hold the average over ranks (on a GPU: once the compute
  // stream gets there; the host does not wait for it).
  void finish_gradients();
  // The step's votes summed over ranks: one all-reduce of host numbers.
  StepVotes sum_votes(const StepVotes& mine);

  // The elements of the trainable buffer this rank's optimizer updates: [0, num_trainable), or its
  // ZeRO-1 range (give them to make_optimizer).
  GradRange update_range() const { return update_range_; }
  // After finish_step: the averaged gradients of update_range() (net.grads(), or this rank's
  // shard of them) and the parameters they update (views of net.params()).
  Tensor& update_grads() { return update_grads_; }
  Tensor& update_params() { return update_params_; }
  // After finish_gradients: queues this rank's sum of squares and non-finite count of
  // update_grads() into `out` (ops::sum_squares_finite's i64 [2] on the net's device), for the
  // step's one read-back.
  void queue_grad_sums(Tensor& out);
  // The global norm and finiteness of the averaged gradients (before clipping), the same on every
  // rank, from this rank's sums read back: under ZeRO-1 each rank's partial sum, gathered and
  // summed in rank order.
  GradStats grad_stats(const ops::SumSquaresFinite& mine);
  // After the optimizer step: ZeRO-1 all-gathers every rank's updated range; else nothing.
  void share_parameters();
  // Checkpoints under ZeRO-1: the bytes of `range` (this rank's shard of the logical state) that
  // other ranks hold (their ranges of the optimizer slots) are broadcast by their holders into
  // `bytes` (snapshot() filled the rest). Every rank calls it at the same step.
  void gather_state(const StateLayout& layout, ByteRange range, std::vector<std::uint8_t>& bytes);

  // Every rank must hold bit-identical parameters and buffers (the promise of data parallelism):
  // compares a digest of them across ranks, an InternalError naming the first rank that differs.
  // One pass over the state: the trainer calls it once per epoch.
  void check_in_sync(std::int64_t step);

  // Records each bucket's all-reduce (on the comm row) from now on; null stops.
  void set_timeline(Timeline* timeline) { timeline_ = timeline; }
  // Returns when every rank has called it.
  void barrier();
  // Every rank's `mine` (the same length on every rank), concatenated in rank order; `label`
  // names the collective in watchdog and --check-collectives messages.
  std::vector<std::int64_t> all_gather(const std::vector<std::int64_t>& mine,
                                       std::string_view label);
  // Every rank's text in rank order; alone, just `mine`.
  std::vector<std::string> gather_text(const std::string& mine);

  // Sums an evaluation over ranks: tallies always, per-sample scores gathered (in rank order)
  // when the accumulator keeps them; nll_sum is the summed negative log-likelihood.
  void reduce_evaluation(EvalAccumulator& acc, double& nll_sum);
  // Sums a regression evaluation over ranks (its error sums and samples; not the per-sample
  // errors) and the loss sum.
  void reduce_evaluation(RegressionTally& tally, double& loss_sum);

 private:
  Communicator* comm_;
  Net& net_;
  DataParallelOptions options_;
  std::unique_ptr<Reducer> reducer_;
  bool reduce_ = true;
  Work buffers_work_;
  Tensor votes_;                        // f32 [StepVotes::count], allocated once
  std::vector<GradRange> zero_ranges_;  // ZeRO-1: every rank's range; empty without
  GradRange update_range_;
  Tensor update_grads_, update_params_;
  Timeline* timeline_ = nullptr;
};

// Ranks may hold different numbers of samples of an evaluation split (no padding): the counts,
// then the data of every rank gathered in rank order (all_gather needs equal counts, so each
// rank pads to the largest).
// Every rank's text, gathered in rank order (on every rank).
std::vector<std::string> gather_text(Communicator& comm, const std::string& mine);

// The digests of every rank, gathered in rank order.
std::vector<std::int64_t> gather_digests(Communicator& comm, std::uint64_t mine);

std::vector<float> gather_floats(Communicator& comm, const std::vector<float>& mine);
std::vector<std::int32_t> gather_ints(Communicator& comm, const std::vector<std::int32_t>& mine);

}  // namespace ruche
