// Heartbeat: each rank's last completed collective, kept in memory by the comm threads (MPI's comm
// thread, NCCL's poll thread) and rewritten by a small writer thread into RUN/heartbeat-<rank> at
// most once a second (a cluster filesystem must not be swamped), by an atomic rename. When the
// watchdog fires, it reads the other ranks' files and names those whose last completed collective
// is older than the timeout (or whose file is missing): the ranks that are dead, hung or cut off.
// The rank that aborts the job first writes RUN/abort-<rank> (its one line and exit code), which
// launcher/ruche-run watches (--abort-grace). comm/ knows only the directory's path
// (CommOptions::run_dir), nothing of runs or layers. MPI-free, header-only.
//
// heartbeat-<rank>, one "key value" a line:
//   rank 2
//   host node7
//   pid 12345
//   collectives 418                      completed so far by this rank (MPI and NCCL)
//   completed_unix 1733550000.125        wall-clock time of the last one (the start if none)
//   last all_reduce avg f32[3658] (gradient bucket 1 of 1, collective #418)
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace ruche {

namespace heartbeat_detail {

inline double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

inline std::string this_host() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

// Writes `text` to `path` through `path.tmp` and a rename, so readers see the old or the new file,
// never half of one. No fsync: the file says how a run is going, it is not its state.
inline bool write_atomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << text;
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

}  // namespace heartbeat_detail

// RUN/abort-<rank>: the line the rank printed and the code it ends the job with, written just
// before MPI_Abort. No-op with an empty directory. Never throws: the job is ending anyway.
inline void write_abort_note(const std::string& run_dir, int rank, const std::string& line,
                             int exit_code) noexcept {
  if (run_dir.empty()) return;
  try {
    std::error_code ec;
    std::filesystem::create_directories(run_dir, ec);
    heartbeat_detail::write_atomically(
        std::filesystem::path(run_dir) / ("abort-" + std::to_string(rank)),
        "code " + std::to_string(exit_code) + "\nline " + line + "\n");
  } catch (...) {
  }
}

class Heartbeat {
 public:
  // At most one writer per run directory and rank in a process: a rank's MPI and NCCL
  // communicators share it (and their completions).
  static std::shared_ptr<Heartbeat> of(const std::string& run_dir, int rank, int size) {
    if (run_dir.empty()) return nullptr;
    static std::mutex mutex;
    static std::map<std::pair<std::string, int>, std::weak_ptr<Heartbeat>> live;
    std::lock_guard<std::mutex> lock(mutex);
    std::weak_ptr<Heartbeat>& slot = live[{run_dir, rank}];
    std::shared_ptr<Heartbeat> beat = slot.lock();
    if (!beat) {
      beat = std::make_shared<Heartbeat>(run_dir, rank, size);
      slot = beat;
    }
    return beat;
  }

  // Writes the first heartbeat now (no collective yet, the start time), then starts the writer.
  Heartbeat(std::string run_dir, int rank, int size, double interval_seconds = 1.0)
      : dir_(std::move(run_dir)),
        rank_(rank),
        size_(size),
        interval_(interval_seconds),
        host_(heartbeat_detail::this_host()),
        completed_unix_(heartbeat_detail::unix_now()) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    write_now();
    writer_ = std::thread([this] { run(); });
  }
  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    writer_.join();
  }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  int rank() const { return rank_; }
  const std::string& run_dir() const { return dir_; }
  std::filesystem::path file_of(int rank) const {
    return std::filesystem::path(dir_) / ("heartbeat-" + std::to_string(rank));
  }

  // A comm thread, after a collective completed: memory only (the writer does the file).
  void completed(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++collectives_;
    completed_unix_ = heartbeat_detail::unix_now();
    last_ = what;
    dirty_ = true;
  }

  // The other ranks whose heartbeat is older than `seconds` (to within the heartbeat's resolution
  // of one interval) or missing, as a phrase for the watchdog's line; "" when none is.
  // "stale heartbeats (no collective completed in 4 s): rank 2 on h1 (418 done, last 4.3 s
  // ago), rank 3 (no heartbeat file)"
  std::string stale_phrase(double seconds) const {
    const double now = heartbeat_detail::unix_now();
    const double older_than = std::max(seconds - interval_, seconds / 2);
    std::vector<std::string> named;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      std::map<std::string, std::string> fields;
      std::ifstream in(file_of(r));
      std::string line;
      while (std::getline(in, line)) {
        const std::size_t space = line.find(' ');
        if (space != std::string::npos) fields[line.substr(0, space)] = line.substr(space + 1);
      }
      char text[160];
      if (!fields.count("completed_unix")) {
        std::snprintf(text, sizeof text, "rank %d (no heartbeat file)", r);
        named.emplace_back(text);
        continue;
      }
      const double age = now - std::atof(fields["completed_unix"].c_str());
      if (age <= older_than) continue;
      std::snprintf(text, sizeof text, "rank %d on %s (%s done, last %.1f s ago)", r,
                    fields["host"].c_str(), fields["collectives"].c_str(), age);
      named.emplace_back(text);
    }
    if (named.empty()) return "";
    std::ostringstream out;
    out << "stale heartbeats (no collective completed in " << seconds << " s): ";
    const std::size_t shown = std::min<std::size_t>(named.size(), 16);
    for (std::size_t i = 0; i < shown; ++i) out << (i ? ", " : "") << named[i];
    if (named.size() > shown) out << " and " << named.size() - shown << " more";
    return out.str();
  }

  void write_abort(const std::string& line, int exit_code) const {
    write_abort_note(dir_, rank_, line, exit_code);
  }

 private:
  void write_now() {
    std::ostringstream text;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      char when[32];
      std::snprintf(when, sizeof when, "%.3f", completed_unix_);
      text << "rank " << rank_ << "\nhost " << host_ << "\npid " << getpid() << "\ncollectives "
           << collectives_ << "\ncompleted_unix " << when << "\nlast " << last_ << "\n";
      dirty_ = false;
    }
    heartbeat_detail::write_atomically(file_of(rank_), text.str());
  }

  // Rewrites the file when a collective completed since the last write, at most once per
  // interval.
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::duration<double>(interval_), [&] { return stopping_; });
      if (!dirty_) continue;
      lock.unlock();
      write_now();
      lock.lock();
    }
    if (dirty_) {  // the last collectives of the run
      lock.unlock();
      write_now();
    }
  }

  const std::string dir_;
  const int rank_, size_;
  const double interval_;
  const std::string host_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::uint64_t collectives_ = 0;
  double completed_unix_;
  std::string last_ = "(none yet)";
  bool dirty_ = false, stopping_ = false;
  std::thread writer_;
};

}  // namespace ruche
