// ruche train --seeds N: the same configuration trained N times, one after another in this
// process, into RUN/seed-1 ... RUN/seed-N, seed k with the solver's random_seed + k - 1. Each is
// a whole run directory (resumable on its own with --resume auto); `ruche compare RUN` reads them
// as one configuration.
#pragma once

#include "engine/train/trainer.h"

namespace ruche::tools {

// Trains `run` (device and threads resolved) once per seed; stops at the first run that does not
// finish with exit 0 and returns its code.
int train_seeds(const TrainRun& run, int seeds);

}  // namespace ruche::tools
