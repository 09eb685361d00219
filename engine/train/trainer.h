// The training run of one process: data, net, solver, the loop, validation, early stopping, the
// NaN guard, the run directory and the final test report (docs/ARCHITECTURE.md, One step; The run
// directory).
#pragma once

#include <optional>
#include <string>

#include "comm/communicator.h"
#include "engine/data/open.h"
#include "engine/data/preprocess.h"
#include "engine/graph/net.h"
#include "engine/proto/ruche.pb.h"
#include "engine/train/checkpointing.h"
#include "engine/train/data_parallel.h"
#include "engine/train/stop_signals.h"
#include "ops/ops.h"

namespace ruche {

// Exit codes a training run can end with (docs/ARCHITECTURE.md, Signals and exit codes).
inline constexpr int kExitOk = 0;
inline constexpr int kExitDiverged = 3;

struct TrainRun {
  std::string model;   // a built-in model, shaped for the dataset; else `net` is used
  int bottleneck = 0;  // --bottleneck: the autoencoders' code size (0: the model's default)
  proto::NetParameter net;
  NetSource source;
  proto::SolverParameter solver;
  DataSpec data;
  PreprocessSource preprocess;  // --normalize, or the record beside --net
  std::string out_dir = "run";
  int threads = 0;             // 0: OMP_NUM_THREADS or all cores
  std::string threads_source;  // why `threads` (--threads, OMP_NUM_THREADS, the core share)
  int data_workers = 0;        // loader threads; 0: all cores for decoded sources (JPEG), else 1
  int prefetch = 0;            // batches buffered; 0: data_workers + 1
  std::string init_weights;
  bool init_partial = false;
  Device device = Device::cpu();
  ops::GpuMath gpu_math;         // --precision, --cudnn-benchmark (a cuda device only)
  DataParallelOptions parallel;  // --bucket-mb, --grad-compression, --sync-bn
  bool timeline = false;         // --timeline: RUN/timeline.json
  bool tensorboard = true;       // RUN/events.out.tfevents.* (--no-tensorboard: off)
  int tb_histograms = 0;         // --tb-histograms N: weight and gradient histograms every N steps
  CheckpointOptions checkpoint;  // --resume, --no-checkpoint, --checkpoint-every-*, --keep-*
};

// The solver `ruche train` uses when none is given: a recipe that takes fashion_cnn past 92%
// on Fashion-MNIST in a few epochs on a laptop's cores.
proto::SolverParameter default_solver();

// The solver as the run uses it: --lr-scaling linear applied for `ranks` ranks (base_lr and
// min_lr times the global batch / 256; without a warmup, one of 5 epochs or 1/18 of the run,
// whichever is shorter: Goyal et al.'s 5 of 90 epochs).
proto::SolverParameter effective_solver(const proto::SolverParameter& given, int ranks);

// Trains as `run` says with the ranks of `comm` (null: alone), every rank calling it alike; rank
// 0 writes run.out_dir. Returns kExitOk, kExitDiverged when a non-finite loss or gradient stopped
// it, or kExitCheckpointed / kExitInterrupted after a stop signal on any rank. Throws
// ruche::Error for user mistakes.
int train(const TrainRun& run, Communicator* comm = nullptr);

}  // namespace ruche
