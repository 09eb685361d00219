// A solver prototxt (ruche train --solver, RUN/solver.prototxt): text format into
// SolverParameter, then the lr schedule's checks and its lr at a few steps.
#include "engine/optim/lr_schedule.h"
#include "engine/proto/text_format.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(prototxt_solver) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ruche::proto::SolverParameter solver;
  ruche::parse_prototxt(text, "solver.prototxt", solver);
  const std::int64_t steps_per_epoch = 7, total_steps = 100;
  ruche::check_lr_schedule(solver, steps_per_epoch, total_steps);
  ruche::warmup_steps(solver, steps_per_epoch);
  for (std::int64_t step : {0, 1, 6, 7, 50, 99}) {
    ruche::lr_at(solver, step, steps_per_epoch, total_steps);
  }
}
