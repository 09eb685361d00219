// The training run of one process: data, net, solver, the loop, validation, early stopping, the
// NaN guard, the run directory and the final test report (DESIGN.md, One step; The run
// directory).
#pragma once

#include <string>

#include "engine/data/open.h"
#include "engine/graph/net.h"
#include "engine/proto/ruche.pb.h"

namespace ruche {

// Exit codes of DESIGN.md that a training run can end with.
inline constexpr int kExitOk = 0;
inline constexpr int kExitDiverged = 3;

struct TrainRun {
  std::string model;  // a built-in model, shaped for the dataset; else `net` is used
  proto::NetParameter net;
  NetSource source;
  proto::SolverParameter solver;
  DataSpec data;
  std::string out_dir = "run";
  int threads = 0;  // 0: OMP_NUM_THREADS or all cores
  std::string init_weights;
  bool init_partial = false;
  Device device = Device::cpu();
};

// The solver `ruche train` uses when none is given: a recipe that takes fashion_cnn past 92%
// on Fashion-MNIST in a few epochs on a laptop's cores.
proto::SolverParameter default_solver();

// Trains as `run` says, writing everything to run.out_dir; returns kExitOk, or kExitDiverged
// when a non-finite loss or gradient stopped it. Throws ruche::Error for user mistakes.
int train(const TrainRun& run);

}  // namespace ruche
