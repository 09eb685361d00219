// Synthetic data for benchmarks: `size` samples of a given shape and class count. A pool of
// distinct random samples (standard normal, already "normalised") is drawn once from Philox
// (RngPurpose::synthetic) and sample i is pool[i % pool]; labels are uniform per index. Reading
// one is a copy, so the loader is never what a benchmark measures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"

namespace ruche {

struct SyntheticOptions {
  Shape sample_shape{3, 32, 32};
  int num_classes = 10;
  std::int64_t size = 50000;
  std::int64_t pool = 256;  // distinct samples held in memory
  std::uint64_t seed = 1;
};

class SyntheticDataset : public Dataset {
 public:
  explicit SyntheticDataset(const SyntheticOptions& options);

  std::int64_t size() const override { return size_; }
  const Shape& sample_shape() const override { return shape_; }
  int num_classes() const override { return static_cast<int>(names_.size()); }
  const std::vector<std::string>& class_names() const override { return names_; }
  const std::string& kind() const override { return kind_; }
  std::int32_t label(std::int64_t index) const override;
  void read(std::int64_t index, float* out) const override;

 private:
  Shape shape_;
  std::int64_t size_;
  std::int64_t pool_;
  std::uint64_t seed_;
  std::vector<float> values_;
  std::vector<std::string> names_;
  std::string kind_ = "synthetic";
};

}  // namespace ruche
