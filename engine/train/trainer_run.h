// The Trainer behind train() (engine/train/trainer.h): one training run of this rank, and the
// helpers its pieces share. trainer.cc holds its set-up and end, trainer_loop.cc the epochs, the
// steps, progress and validation. Internal to engine/train.
#pragma once

#include "engine/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "engine/data/loader.h"
#include "engine/log/metrics_log.h"
#include "engine/log/progress.h"
#include "engine/log/tensorboard.h"
#include "engine/log/timeline.h"
#include "engine/metrics/classification.h"
#include "engine/metrics/eval_report.h"
#include "engine/models/models.h"
#include "engine/optim/grad_norm.h"
#include "engine/optim/lr_schedule.h"
#include "engine/optim/loss_scaler.h"
#include "engine/optim/optimizer.h"
#include "engine/proto/text_format.h"
#include "engine/tensor/allocator.h"
#include "engine/train/eval_run.h"
#include "engine/train/checkpointing.h"
#include "engine/train/ema.h"
#include "engine/train/discipline.h"
#include "engine/train/evaluate.h"
#include "engine/train/fault.h"
#include "engine/train/reconstruction_grid.h"
#include "engine/train/step_readout.h"
#include "engine/train/tensorboard_log.h"
#include "engine/train/task.h"
#include "engine/train/train_data.h"
#include "engine/train/weights.h"
#include "ops/cuda/runtime.h"
#include "ops/ops.h"

namespace ruche::trainer_detail {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  RUCHE_REQUIRE(out) << path.string() << ": cannot write";
  out << text;
}

// printf of one number.
inline std::string one_value(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// Loss, top-1 hits (classification) or error sums (regression) and samples summed over some
// steps (a progress interval, an epoch).
struct Tally {
  double loss = 0, hits = 0;  // hits: multi-label, a sum of per-sample fractions
  std::int64_t seen = 0;
  std::int64_t labelled = 0;  // the samples hits are out of (seen less ignored labels)
  RegressionTally errors;
  std::array<double, StepVotes::max_loss_terms> terms{};  // each loss layer's sum (several)
  std::int64_t steps = 0;        // optimizer steps tallied (taken or skipped)
  std::uint64_t host_waits = 0;  // this thread's waits for the GPU in those steps
  void add(const StepVotes& v) {
    loss += v[StepVotes::loss_sum];
    for (std::size_t i = 0; i < terms.size(); ++i) terms[i] += v[StepVotes::loss_terms + i];
    hits += v[StepVotes::hits];
    seen += static_cast<std::int64_t>(v[StepVotes::samples]);
    labelled += static_cast<std::int64_t>(v[StepVotes::labelled]);
    errors.squared += v[StepVotes::squared_error];
    errors.absolute += v[StepVotes::absolute_error];
    errors.samples += static_cast<std::int64_t>(v[StepVotes::samples]);
  }
  double mean_loss() const { return seen ? loss / static_cast<double>(seen) : 0; }
  double accuracy() const { return labelled ? hits / static_cast<double>(labelled) : 0; }
};

// Watches a validation metric for early stopping and for keeping the best weights.
struct BestTracker {
  bool higher_is_better = true;
  float min_delta = 0;
  double best = NAN;
  int best_epoch = 0;
  int epochs_without_gain = 0;
  // Whether `value` is an improvement (and records it).
  bool update(double value, int epoch) {
    const bool better = std::isnan(best) ||
                        (higher_is_better ? value > best + min_delta : value < best - min_delta);
    if (better) {
      best = value;
      best_epoch = epoch;
      epochs_without_gain = 0;
    } else {
      ++epochs_without_gain;
    }
    return better;
  }
};

inline std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out.append(out.empty() ? "" : ", ").append(n);
  return out;
}

inline void print_nan_diagnosis(Net& net, std::int64_t step, float lr) {
  const std::string where = net.first_nonfinite();
  std::fprintf(stderr,
               "ruche: training diverged at step %lld: the loss or a gradient is not finite "
               "(first seen in %s).\n"
               "  Try a lower learning rate (now %g), stronger weight decay, gradient clipping "
               "(--clip-grad-norm), or warmup.\n",
               static_cast<long long>(step), where.empty() ? "the loss" : where.c_str(), lr);
}

inline void warn_chance_level(int classes, double train_acc, double val_acc) {
  std::fprintf(stderr,
               "ruche: warning: accuracy is still at chance level (train %.1f%%, val %.1f%%, "
               "chance %.1f%%). Usual causes: labels misaligned with the data, a learning rate "
               "far too low (or so high it saturates), weights initialised to zero, a frozen "
               "output layer (lr_mult 0), or inputs that were not normalised.\n",
               100 * train_acc, 100 * val_acc, 100.0 / classes);
}

// What a step ended as: taken by the optimizer, skipped (fp16 overflow, --on-nan skip), or the
// run diverged.
enum class StepEnd { taken, skipped, diverged };
// What an epoch's steps ended as: all done, a stop signal, a divergence, or a validation every
// eval_every_steps that stopped the run (early stopping, the target accuracy).
enum class EpochEnd { done, stopped, diverged, validation_stop };

// One training run of this rank: set-up, then epochs of steps, each epoch ending with validation
// and a checkpoint, then the run's end (final weights, the test split once). Every rank runs the
// same sequence; the decisions come from values that are identical on every rank.
class Trainer {
 public:
  Trainer(const TrainRun& run, Communicator* comm);
  int run();

 private:
  // ---- set-up, in this order ----
  void check_solver_and_device();
  void open_data();
  void build_net();
  void write_run_directory();
  void plan_steps();
  void open_checkpoints();
  void prepare_loop();
  void start_timeline();
  // ---- the loop ----
  EpochEnd train_epoch(int epoch);
  StepEnd train_step(int epoch, float lr, StepVotes& votes);
  void forward_backward();
  void report_progress(int epoch, float lr);
  TrainingPosition position(std::uint32_t epoch, std::int64_t steps_done) const;
  // ---- end of an epoch ----
  bool weights_finite();
  // When validation is due (every eval_every_epochs at an epoch's end, or every eval_every_steps
  // after a step; and after the last), runs it; returns whether to stop (early stopping, target
  // accuracy).
  bool validate(int epoch, bool epoch_end);
  // One validation pass of each kind; they return the monitored value (val_acc or val_loss) and
  // set `stop` when the target accuracy is reached.
  double validate_classes(int epoch, bool& stop);
  double validate_regression(int epoch);
  // ---- end of the run ----
  void finish_run();
  int stopped_by_signal() const;
  void test_once();

  const TrainRun& run_;
  Communicator* comm_;
  proto::SolverParameter solver_;
  int rank_ = 0, ranks_ = 1;
  bool lead_ = true;  // writes the run directory; the others only train
  std::filesystem::path out_;
  Fault fault_;

  TrainData data_;
  BatchSource* train_loader_ = nullptr;
  BatchSource* val_loader_ = nullptr;
  proto::NetParameter net_param_;
  Task task_ = Task::classification;
  std::string monitor_;  // val_acc or val_loss
  std::unique_ptr<Net> net_;
  std::unique_ptr<DataParallel> dp_;
  MetricsLog metrics_;
  TensorBoardWriter tb_;

  std::int64_t steps_per_epoch_ = 0, total_steps_ = 0;
  int epochs_ = 0;
  std::unique_ptr<Optimizer> optimizer_;
  std::optional<WeightAverage> ema_;
  std::unique_ptr<Checkpointer> checkpoints_;
  TrainingPosition at_;  // where training started (a resumed checkpoint's position)

  std::optional<StepReadout> readout_;  // what the host reads of each step, with one wait
  BestTracker best_;
  StepContext ctx_;
  std::optional<StopSignals> signals_;
  std::unique_ptr<Timeline> timeline_;
  std::vector<std::string> forward_names_, backward_names_;  // outlive the events naming them
  std::optional<LossScaler> scaler_;
  StopRequest stop_request_ = StopRequest::none;
  std::int64_t step_ = 0, skipped_ = 0;
  std::uint32_t micro_ = 0;
  Clock::time_point started_;
  std::int64_t samples_per_step_ = 0, first_step_in_epoch_ = 0;
  std::int64_t steps_done_in_epoch_ = 0;  // of the epoch in progress (a stopping step included)
  // The steps of the progress interval and of the epoch in progress.
  Tally interval_, whole_epoch_;
  Clock::time_point interval_start_;
};

inline Trainer::Trainer(const TrainRun& run, Communicator* comm)
    : run_(run),
      comm_(comm),
      solver_(effective_solver(run.solver, comm ? comm->size() : 1)),
      rank_(comm ? comm->rank() : 0),
      ranks_(comm ? comm->size() : 1),
      lead_(rank_ == 0),
      out_(run.out_dir) {}

}  // namespace ruche::trainer_detail
