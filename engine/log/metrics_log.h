// RUN/metrics.jsonl: one JSON object a line, flushed as it is written so curves can be read live.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace ruche {

// One record: {"split": "train", "epoch": 1, "step": 100, "loss": 0.41, ...}; numbers and
// strings only, written in the order given.
class MetricsRecord {
 public:
  explicit MetricsRecord(const std::string& split) { add("split", split); }
  MetricsRecord& add(const std::string& key, double value);
  MetricsRecord& add(const std::string& key, std::int64_t value);
  MetricsRecord& add(const std::string& key, int value) {
    return add(key, static_cast<std::int64_t>(value));
  }
  MetricsRecord& add(const std::string& key, const std::string& value);
  std::string json() const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;  // key, JSON-encoded value
};

class MetricsLog {
 public:
  MetricsLog() = default;  // writes nothing until opened (ranks other than 0 never open it)
  // Appends to path (a resumed run continues its file).
  explicit MetricsLog(const std::string& path);
  void open(const std::string& path);
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  ~MetricsLog();
  void write(const MetricsRecord& record);

 private:
  std::FILE* file_ = nullptr;
};

}  // namespace ruche
