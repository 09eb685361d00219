#include "engine/log/metrics_log.h"

#include <cmath>

#include "engine/error.h"
#include "engine/metrics/json_writer.h"

namespace ruche {

MetricsRecord& MetricsRecord::add(const std::string& key, double value) {
  char buf[32];
  if (std::isfinite(value)) {
    std::snprintf(buf, sizeof buf, "%.6g", value);
  } else {
    std::snprintf(buf, sizeof buf, "null");  // JSON has no NaN; null marks a diverged value
  }
  fields_.emplace_back(key, buf);
  return *this;
}

MetricsRecord& MetricsRecord::add(const std::string& key, std::int64_t value) {
  fields_.emplace_back(key, std::to_string(value));
  return *this;
}

MetricsRecord& MetricsRecord::add(const std::string& key, const std::string& value) {
  fields_.emplace_back(key, json_quote(value));
  return *this;
}

std::string MetricsRecord::json() const {
  std::string out = "{";
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    if (i) out += ", ";
    out += json_quote(fields_[i].first) + ": " + fields_[i].second;
  }
  return out + "}";
}

MetricsLog::MetricsLog(const std::string& path) { open(path); }

void MetricsLog::open(const std::string& path) {
  RUCHE_CHECK(file_ == nullptr) << "metrics log opened twice";
  file_ = std::fopen(path.c_str(), "a");
  RUCHE_REQUIRE(file_ != nullptr) << path << ": cannot open for writing";
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const MetricsRecord& record) {
  if (!file_) return;
  const std::string line = record.json() + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace ruche
