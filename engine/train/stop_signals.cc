#include "engine/train/stop_signals.h"

#include <csignal>
#include <cstdlib>

namespace ruche {
namespace {

// What a handler may touch: lock-free atomics of sig_atomic_t width.
volatile std::sig_atomic_t g_stop = 0;       // SIGUSR1 / SIGTERM seen
volatile std::sig_atomic_t g_interrupt = 0;  // SIGUSR2 / SIGINT seen

constexpr int kSignals[] = {SIGUSR1, SIGTERM, SIGUSR2, SIGINT};
struct sigaction g_previous[4];

void on_signal(int signal) {
  if (signal == SIGUSR1 || signal == SIGTERM) {
    g_stop = 1;
  } else {
    if (signal == SIGINT && g_interrupt) std::_Exit(kExitInterrupted);  // the second Ctrl-C
    g_interrupt = 1;
  }
}

}  // namespace

StopSignals::StopSignals() {
  g_stop = 0;
  g_interrupt = 0;
  struct sigaction action = {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and waits in progress carry on
  for (int i = 0; i < 4; ++i) sigaction(kSignals[i], &action, &g_previous[i]);
}

StopSignals::~StopSignals() {
  for (int i = 0; i < 4; ++i) sigaction(kSignals[i], &g_previous[i], nullptr);
}

StopRequest StopSignals::requested() const {
  if (g_stop) return StopRequest::checkpoint_and_stop;
  if (g_interrupt) return StopRequest::interrupt;
  return StopRequest::none;
}

}  // namespace ruche
