#include "engine/log/tensorboard.h"

#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "engine/checkpoint/checkpoint.h"  // crc32c
#include "engine/error.h"

namespace ruche {
namespace {

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The right edges of TensorBoard's default buckets, ascending: -DBL_MAX, ..., -1e-12, 0, 1e-12,
// ..., DBL_MAX.
const std::vector<double>& default_bucket_limits() {
  static const std::vector<double> limits = [] {
    std::vector<double> positive;
    for (double v = 1e-12; v < 1e20; v *= 1.1) positive.push_back(v);
    positive.push_back(DBL_MAX);
    std::vector<double> all;
    for (auto it = positive.rbegin(); it != positive.rend(); ++it) all.push_back(-*it);
    all.push_back(0.0);
    all.insert(all.end(), positive.begin(), positive.end());
    return all;
  }();
  return limits;
}

}  // namespace

std::uint32_t masked_crc32c(const void* data, std::size_t size) {
  const std::uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& data) {
  const std::uint64_t length = data.size();
  char header[12];
  std::memcpy(header, &length, 8);  // little-endian, as every machine ruche runs on
  const std::uint32_t length_crc = masked_crc32c(header, 8);
  std::memcpy(header + 8, &length_crc, 4);
  const std::uint32_t data_crc = masked_crc32c(data.data(), data.size());
  std::string record(header, sizeof header);
  record += data;
  record.append(reinterpret_cast<const char*>(&data_crc), 4);
  return record;
}

tensorboard::HistogramProto make_histogram(const float* values, std::int64_t n) {
  const std::vector<double>& limits = default_bucket_limits();
  std::vector<double> counts(limits.size(), 0.0);
  tensorboard::HistogramProto h;
  double lo = DBL_MAX, hi = -DBL_MAX, sum = 0, sum_squares = 0;
  std::int64_t counted = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = values[i];
    if (!std::isfinite(v)) continue;  // a NaN has no bucket; the NaN guard reports it
    // Bucket b holds [limits[b-1], limits[b]): the first edge above v.
    const auto b = std::upper_bound(limits.begin(), limits.end(), v) - limits.begin();
    counts[static_cast<std::size_t>(std::min<std::ptrdiff_t>(b, std::ssize(limits) - 1))] += 1;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
    sum_squares += v * v;
    ++counted;
  }
  h.set_min(counted ? lo : 0);
  h.set_max(counted ? hi : 0);
  h.set_num(static_cast<double>(counted));
  h.set_sum(sum);
  h.set_sum_squares(sum_squares);
  for (std::size_t i = 0; i < counts.size();) {
    double edge = limits[i];
    const double count = counts[i++];
    if (count == 0) {  // a run of empty buckets becomes one, ending where the run ends
      while (i < counts.size() && counts[i] == 0) edge = limits[i++];
    }
    h.add_bucket_limit(edge);
    h.add_bucket(count);
  }
  return h;
}

void TensorBoardWriter::open(const std::string& dir) {
  RUCHE_CHECK(file_ == nullptr) << "tensorboard writer opened twice";
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  const auto seconds = static_cast<long long>(wall_time());
  path_ = (std::filesystem::path(dir) / ("events.out.tfevents." + std::to_string(seconds) + "." +
                                         host + "." + std::to_string(getpid()) + ".ruche"))
              .string();
  file_ = std::fopen(path_.c_str(), "ab");
  RUCHE_REQUIRE(file_ != nullptr) << path_ << ": cannot open for writing";
  tensorboard::Event event;
  event.set_wall_time(wall_time());
  event.set_file_version("brain.Event:2");
  write(event);
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::write(const tensorboard::Event& event) {
  if (!file_) return;
  const std::string record = tfrecord(event.SerializeAsString());
  std::fwrite(record.data(), 1, record.size(), file_);
}

void TensorBoardWriter::add_scalar(const std::string& tag, double value, std::int64_t step) {
  if (!file_) return;
  tensorboard::Event event;
  event.set_wall_time(wall_time());
  event.set_step(step);
  auto* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  write(event);
}

void TensorBoardWriter::add_histogram(const std::string& tag, const float* values, std::int64_t n,
                                      std::int64_t step) {
  if (!file_) return;
  tensorboard::Event event;
  event.set_wall_time(wall_time());
  event.set_step(step);
  auto* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  *v->mutable_histo() = make_histogram(values, n);
  write(event);
}

void TensorBoardWriter::add_image(const std::string& tag, const std::string& png, int width,
                                  int height, int channels, std::int64_t step) {
  if (!file_) return;
  tensorboard::Event event;
  event.set_wall_time(wall_time());
  event.set_step(step);
  auto* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  auto* image = v->mutable_image();
  image->set_width(width);
  image->set_height(height);
  image->set_colorspace(channels);
  image->set_encoded_image_string(png);
  write(event);
}

void TensorBoardWriter::flush() {
  if (file_) std::fflush(file_);
}

}  // namespace ruche
