// Timeline: what each rank did when, as a Chrome trace (chrome://tracing, Perfetto): forward and
// backward of every layer, each gradient bucket's all-reduce on the comm thread, the wait for the
// gradients, the optimizer (docs/ARCHITECTURE.md, Observability). Overlap is visible as all-reduce
// bars beside backward bars; the "wait for gradients" bar is the communication that was not hidden.
//
// Every rank records into its own Timeline; at the end rank 0 gathers them into RUN/timeline.json
// with pid = rank. Times count from an origin every rank takes right after a barrier, so ranks
// on one machine line up to microseconds (across machines, to the barrier's skew).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace ruche {

class Timeline {
 public:
  using Clock = std::chrono::steady_clock;
  enum Track { compute = 0, comm = 1 };  // Chrome's tid: one row each

  // Keeps at most max_events (the rest of a long run is dropped, and the file says so).
  explicit Timeline(std::size_t max_events = 200000);

  void set_origin(Clock::time_point origin) { origin_ = origin; }
  // A complete event. `name` must outlive the Timeline (layer names, literals, bucket labels).
  // Thread-safe: the comm thread records too.
  void add(const std::string* name, const char* category, Track track, Clock::time_point start,
           Clock::time_point end);
  void add(const char* name, const char* category, Track track, Clock::time_point start,
           Clock::time_point end);

  // This rank's events as JSON objects joined by commas (no brackets), with pid = rank.
  std::string events_json(int rank) const;
  std::size_t dropped() const { return dropped_; }

 private:
  struct Event {
    const char* name;
    const char* category;
    Track track;
    std::int64_t start_us, duration_us;
  };
  void push(const char* name, const char* category, Track track, Clock::time_point start,
            Clock::time_point end);

  mutable std::mutex mutex_;
  Clock::time_point origin_ = Clock::now();
  std::size_t max_events_;
  std::vector<Event> events_;
  std::size_t dropped_ = 0;
};

// The whole file from every rank's events_json, in rank order.
std::string timeline_file(const std::vector<std::string>& rank_events, std::size_t dropped);

}  // namespace ruche
