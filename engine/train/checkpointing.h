// Checkpointing in the training loop (docs/ARCHITECTURE.md, Checkpoints; One step): when to save,
// saving asynchronously (each rank copies its share of the state at a step boundary and a writer
// thread writes it while training goes on), committing once every rank's shard is durable, and
// finding the checkpoint to resume from. Every rank calls every method at the same step: the
// decisions come from the step's votes (DataParallel), so no rank ever waits on a collective alone.
#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "engine/checkpoint/checkpoint.h"
#include "engine/train/data_parallel.h"
#include "engine/train/fault.h"

namespace ruche {

// The exit code of a run whose final checkpoint (end of the run, or of a stop signal) could not
// be written for lack of space (EX_IOERR); ruche-run never restarts it. A periodic save that
// meets a full disk is only a warning (docs/ARCHITECTURE.md, Signals and exit codes).
inline constexpr int kExitSaveFailed = 74;

struct CheckpointOptions {
  bool enabled = true;           // --no-checkpoint
  std::int64_t every_steps = 0;  // --checkpoint-every-steps (0: off)
  double every_minutes = 30;     // --checkpoint-every-minutes (0: off); rank 0's clock decides
  // --checkpoint-every-steps auto[:P%]: the cadence rank 0 measures, keeping a save's cost within
  // P% of the training time (0: off; then every_steps and every_minutes are 0).
  double auto_percent = 0;
  int keep = 3;        // --keep-checkpoints (0: all)
  std::string resume;  // --resume: "", "auto" or a checkpoint directory
};

// --checkpoint-every-steps TEXT into `options`: "N" (every N steps; 0: off) or "auto[:P%]"
// (auto_percent P, 2 when not given); anything else is a ruche::Error.
void parse_checkpoint_every_steps(const std::string& text, CheckpointOptions& options);

// --checkpoint-every-steps auto (CheckFreq, FAST '21): the most frequent cadence, in steps, whose
// save stays within `percent` % of the training time: the smallest N >= 1 with
// save_seconds <= percent / 100 * N * step_seconds (at most kMaxAutoCadence).
inline constexpr std::int64_t kMaxAutoCadence = 1000000;
std::int64_t choose_cadence(double step_seconds, double save_seconds, double percent);

// The cadence in force under --checkpoint-every-steps auto and what it was chosen from.
struct CheckpointCadence {
  std::int64_t every = 0;   // steps from one save to the next; 0: not measured yet
  double step_seconds = 0;  // the median step without a save near it
  double save_seconds = 0;  // the median save: snapshot + write + commit
  double cost_percent = 0;  // save_seconds / (every x step_seconds), in %
};

class Checkpointer {
 public:
  // `meta` carries what does not change during the run (world size, threads, net, solver, hash).
  Checkpointer(const CheckpointOptions& options, const std::string& run_dir, DataParallel& dp,
               StateLayout layout, CheckpointMeta meta, const Fault& fault);
  ~Checkpointer();

  bool enabled() const { return options_.enabled; }
  // A save was started and is not committed yet (its shard may still be being written).
  bool saving() const { return pending_; }
  // The checkpoint --resume names, loaded and verified; with "auto", the newest committed one
  // that verifies (saying which were skipped and why), none when there is none.
  std::optional<LoadedCheckpoint> find_resume() const;

  // Restores the checkpoint find_resume() gives into the layout's tensors and the optimizer's
  // step count, says so, checks every rank resumed the same step, and returns where training
  // stands: the beginning when there is nothing to resume.
  TrainingPosition resume(Optimizer& optimizer);

  // This rank's votes for the step: a time-based (or, with auto, a measured) checkpoint is due
  // (rank 0 only), its shard write has finished (or none is in flight).
  float vote_due() const;
  float vote_written() const;

  // After the step's votes: commits a pending save once every rank's shard is written
  // (written_votes == world size), and starts a save when due_votes > 0 or the step count says
  // so, unless `epoch_end_follows` (the epoch-end save will). Returns whether a save started.
  bool after_step(const TrainingPosition& position, float due_votes, float written_votes,
                  bool epoch_end_follows);
  // Starts a save of `position` (end of an epoch), committed later.
  void save_async(const TrainingPosition& position);
  // Saves `position` now and commits it before returning (end of epoch, of the run, a stop
  // signal); a save in flight is committed first. Returns false, the same on every rank, when
  // the disk had no room for it (the error said; the previous checkpoint stays the latest).
  bool save_now(const TrainingPosition& position);
  // Waits for a save in flight and commits it (end of the run).
  void finish();
  // --checkpoint-every-steps auto: the cadence chosen so far (rank 0, whose vote carries it;
  // every 0 on the other ranks and before the first measured save).
  const CheckpointCadence& cadence() const { return cadence_; }

 private:
  void start_save(const TrainingPosition& position);
  // Commits the save in flight; false (on every rank) when a shard, or on rank 0 the manifest or
  // COMMIT, met a full disk: said loudly, the directory removed, training goes on. `final`: the
  // run ends after it (the caller turns false into exit 74).
  bool commit_pending(bool final = false);
  // auto: a step ended now (clean: no save started, written or committed during it).
  void time_step(std::int64_t step);
  void choose_auto_cadence(const char* why);

  // auto: measurements on this rank (rank 0's decide).
  static constexpr int kWarmupSteps = 3, kMeasureSteps = 10;
  std::deque<double> step_samples_, save_samples_;
  std::optional<std::chrono::steady_clock::time_point> last_step_end_;
  bool step_dirty_ = true;  // a save touched the step being timed
  int warmup_left_ = kWarmupSteps;
  std::int64_t last_step_ = 0, last_save_step_ = 0;
  double snapshot_seconds_ = 0;
  CheckpointCadence cadence_;
  std::int64_t printed_every_ = 0;  // the cadence rank 0 last said

  CheckpointOptions options_;
  std::string root_;  // RUN/ckpt
  DataParallel& dp_;
  StateLayout layout_;
  CheckpointMeta meta_;
  const Fault& fault_;
  ShardWriter writer_;
  bool pending_ = false;  // a save started and not yet committed
  std::int64_t pending_step_ = 0;
  bool saved_ = false;  // saved_step_ was committed (or resumed from): the end need not redo it
  std::int64_t saved_step_ = 0;
  CheckpointMeta pending_meta_;
  std::chrono::steady_clock::time_point last_save_ = std::chrono::steady_clock::now();
};

}  // namespace ruche
