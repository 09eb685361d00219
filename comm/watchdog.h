// Watchdog: a collective that does not finish in T seconds aborts the job, naming rank and
// collective (docs/ARCHITECTURE.md, Errors), so a rank that died, hangs in compute or skipped a
// collective ends the job (and the launcher restarts it) instead of leaving its peers waiting.
//
// A comm thread brackets each collective with start/stop and calls check() while it polls. A
// thread waiting on the result calls check_stuck(): it fires later, at 1.5 T, and only matters
// when the comm thread itself is stuck in a call that never returns. MPI-free: the backend passes
// how to end the job. With a Heartbeat (CommOptions::run_dir), the line also names the ranks whose
// heartbeat is stale, and RUN/abort-<rank> is written before the job is ended.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <utility>

#include "comm/heartbeat.h"

namespace ruche {

// The exit status of a job ended by a collective: watchdog timeout, or collectives that differ
// across ranks (check_collectives). Not 0, 2, 3, 75 or 130 (docs/ARCHITECTURE.md, Signals and exit
// codes), so the launcher restarts from the last checkpoint. 70 is sysexits' EX_SOFTWARE.
inline constexpr int kExitCollectiveFailed = 70;

class Watchdog {
 public:
  // Given the one line to print; prints it and ends the job. Tests pass one that returns.
  using Expire = std::function<void(const std::string& line)>;

  // timeout_seconds <= 0: never expires. `heartbeat` (may be null): the rank's, read on expiry.
  Watchdog(int rank, double timeout_seconds, Expire expire,
           std::shared_ptr<Heartbeat> heartbeat = nullptr)
      : rank_(rank),
        timeout_(timeout_seconds),
        expire_(std::move(expire)),
        heartbeat_(std::move(heartbeat)) {}

  bool enabled() const { return timeout_ > 0; }
  double timeout_seconds() const { return timeout_; }

  // The comm thread starts and ends a collective; `what` names it ("all_reduce sum f32[8] (...)").
  void start(std::string what) {
    if (!enabled()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    what_ = std::move(what);
    started_ = Clock::now();
    running_ = true;
  }
  void stop() {
    if (!enabled()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = false;
  }

  // The comm thread, between polls: expires once the collective has run T seconds.
  void check() { check_after(1.0, "has not completed in "); }
  // A waiting thread: expires at 1.5 T, when the comm thread did not get to check().
  void check_stuck() { check_after(1.5, "is stuck: the comm thread has not returned in "); }

 private:
  using Clock = std::chrono::steady_clock;

  void check_after(double factor, const char* what_happened) {
    if (!enabled()) return;
    std::string line;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!running_ || fired_) return;
      const std::chrono::duration<double> ran = Clock::now() - started_;
      if (ran.count() < factor * timeout_) return;
      fired_ = true;
      char seconds[32];
      std::snprintf(seconds, sizeof seconds, "%g s", factor * timeout_);
      line = "ruche: rank ";
      line.append(std::to_string(rank_)).append(": watchdog: ").append(what_).append(" ");
      line.append(what_happened).append(seconds);
    }
    if (heartbeat_) {
      const std::string stale = heartbeat_->stale_phrase(timeout_);
      if (!stale.empty()) line.append("; ").append(stale);
    }
    line.append("; aborting the job");
    if (heartbeat_) heartbeat_->write_abort(line, kExitCollectiveFailed);
    expire_(line);
  }

  const int rank_;
  const double timeout_;
  const Expire expire_;
  const std::shared_ptr<Heartbeat> heartbeat_;
  std::mutex mutex_;
  std::string what_;
  Clock::time_point started_;
  bool running_ = false, fired_ = false;
};

}  // namespace ruche
