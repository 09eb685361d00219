#include "engine/log/timeline.h"

#include "engine/metrics/json_writer.h"

namespace ruche {

Timeline::Timeline(std::size_t max_events) : max_events_(max_events) {
  events_.reserve(std::min<std::size_t>(max_events, 1 << 16));
}

void Timeline::add(const std::string* name, const char* category, Track track,
                   Clock::time_point start, Clock::time_point end) {
  push(name->c_str(), category, track, start, end);
}

void Timeline::add(const char* name, const char* category, Track track, Clock::time_point start,
                   Clock::time_point end) {
  push(name, category, track, start, end);
}

void Timeline::push(const char* name, const char* category, Track track, Clock::time_point start,
                    Clock::time_point end) {
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  std::lock_guard<std::mutex> lock(mutex_);
  if (events_.size() >= max_events_) {
    ++dropped_;
    return;
  }
  events_.push_back({name, category, track, duration_cast<microseconds>(start - origin_).count(),
                     duration_cast<microseconds>(end - start).count()});
}

std::string Timeline::events_json(int rank) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  for (const Event& e : events_) {
    JsonWriter w;
    w.begin_object();
    w.key("name").value(e.name).key("cat").value(e.category).key("ph").value("X");
    w.key("ts").value(e.start_us).key("dur").value(e.duration_us);
    w.key("pid").value(rank).key("tid").value(static_cast<int>(e.track));
    w.end_object();
    if (!out.empty()) out += ",\n";
    out += w.str();
  }
  // Names for the rows: "rank 1", "compute" and "comm".
  auto meta = [&](const char* what, int tid, const std::string& name) {
    JsonWriter w;
    w.begin_object().key("name").value(what).key("ph").value("M").key("pid").value(rank);
    if (tid >= 0) w.key("tid").value(tid);
    w.key("args").begin_object().key("name").value(name).end_object().end_object();
    if (!out.empty()) out += ",\n";
    out += w.str();
  };
  meta("process_name", -1, "rank " + std::to_string(rank));
  meta("thread_name", compute, "compute");
  meta("thread_name", comm, "comm");
  return out;
}

std::string timeline_file(const std::vector<std::string>& rank_events, std::size_t dropped) {
  std::string out = "{\"displayTimeUnit\": \"ms\",";
  if (dropped) out += " \"ruche_dropped_events\": " + std::to_string(dropped) + ",";
  out += "\n\"traceEvents\": [\n";
  bool first = true;
  for (const std::string& events : rank_events) {
    if (events.empty()) continue;
    if (!first) out += ",\n";
    out += events;
    first = false;
  }
  return out + "\n]}\n";
}

}  // namespace ruche
