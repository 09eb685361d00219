// Checkpointing in the training loop (docs/ARCHITECTURE.md, Checkpoints; One step): when to save,
// saving asynchronously (each rank copies its share of the state at a step boundary and a writer
// thread writes it while training goes on), committing once every rank's shard is durable, and
// finding the checkpoint to resume from. Every rank calls every method at the same step: the
// decisions come from the step's votes (DataParallel), so no rank ever waits on a collective alone.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "engine/checkpoint/checkpoint.h"
#include "engine/train/data_parallel.h"
#include "engine/train/fault.h"

namespace ruche {

struct CheckpointOptions {
  bool enabled = true;            // --no-checkpoint
  std::int64_t every_steps = 0;   // --checkpoint-every-steps (0: off)
  double every_minutes = 30;      // --checkpoint-every-minutes (0: off); rank 0's clock decides
  int keep = 3;                   // --keep-checkpoints (0: all)
  std::string resume;             // --resume: "", "auto" or a checkpoint directory
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

  // This rank's votes for the step: a time-based checkpoint is due (rank 0 only), its shard write
  // has finished (or none is in flight).
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
  // signal); a save in flight is committed first.
  void save_now(const TrainingPosition& position);
  // Waits for a save in flight and commits it (end of the run).
  void finish();

 private:
  void start_save(const TrainingPosition& position);
  void commit_pending();

  CheckpointOptions options_;
  std::string root_;  // RUN/ckpt
  DataParallel& dp_;
  StateLayout layout_;
  CheckpointMeta meta_;
  const Fault& fault_;
  ShardWriter writer_;
  bool pending_ = false;             // a save started and not yet committed
  std::int64_t pending_step_ = 0;
  bool saved_ = false;  // saved_step_ was committed (or resumed from): the end need not redo it
  std::int64_t saved_step_ = 0;
  CheckpointMeta pending_meta_;
  std::chrono::steady_clock::time_point last_save_ = std::chrono::steady_clock::now();
};

}  // namespace ruche
