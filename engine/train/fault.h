// Deterministic fault injection for the tests of failure handling (docs/ARCHITECTURE.md, Tests):
// RUCHE_FAULT=<kind>:<step>[@<rank>] makes a rank (every rank without @) fail when it reaches
// that step: throw_at_step throws an InternalError (a bug's way to fail), crash_at_step kills
// the process (SIGKILL), hang_at_step sleeps forever (for the watchdog);
// crash_after_shard_write:N kills the rank after
// its shard of the step-N checkpoint is durable and before the checkpoint is committed;
// crash_in_writer:N kills it from the writer thread, before the shard is written.
// N+ (e.g. crash_in_writer:40+) fires at the first step >= N at that point instead: the first
// save from step N on, wherever --checkpoint-every-steps auto puts it.
// RUCHE_FAULT_MARK=FILE makes it fire once: only while FILE does not exist (it is created first),
// so a job restarted from a checkpoint runs on past the fault.
#pragma once

#include <cstdint>
#include <string>

namespace ruche {

struct Fault {
  enum class Kind {
    none,
    throw_at_step,
    crash_at_step,
    hang_at_step,
    crash_after_shard_write,
    crash_in_writer
  };
  enum class Point { step_start, after_shard_write, in_writer };  // where the trainer asks
  Kind kind = Kind::none;
  std::int64_t step = 0;
  bool or_later = false;  // N+: at the first step >= N that reaches the point
  int rank = -1;          // -1: every rank
  std::string mark;       // RUCHE_FAULT_MARK

  // Parses RUCHE_FAULT; unset is none, a malformed value a ruche::Error.
  static Fault from_env();
  static Fault parse(const std::string& text);
  // Fails as configured when this rank reaches `step` at `point`; otherwise returns.
  void maybe_fail(Point point, std::int64_t step, int rank) const;
};

}  // namespace ruche
