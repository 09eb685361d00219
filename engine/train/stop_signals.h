// The signals a training run stops on (docs/ARCHITECTURE.md, Signals and exit codes). mpirun
// forwards only SIGUSR1 and SIGUSR2 to the ranks, so those carry the two requests; SIGTERM (what
// Slurm and ruche-run send) means the same as SIGUSR1 and Ctrl-C on a lone process the same as
// SIGUSR2. A handler only sets a flag; the trainer reads it once per step and all ranks vote on it,
// so every rank stops after the same step. A second Ctrl-C kills at once.
#pragma once

namespace ruche {

enum class StopRequest {
  none,
  checkpoint_and_stop,  // SIGUSR1, SIGTERM: exit 75, restarted by ruche-run from the checkpoint
  interrupt,            // SIGUSR2, SIGINT: finish the step, save, exit 130, never restarted
};

inline constexpr int kExitCheckpointed = 75;
inline constexpr int kExitInterrupted = 130;

// Installs the handlers for the life of the object (restoring the previous ones after).
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The strongest request received so far (checkpoint_and_stop wins over interrupt).
  StopRequest requested() const;
};

}  // namespace ruche
