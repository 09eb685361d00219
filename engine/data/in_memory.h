// InMemoryDataset: decoded samples held in one array (uint8 pixels or float32 values), the
// storage behind the IDX, CIFAR and npz sources.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/data/dataset.h"

namespace ruche {

struct InMemoryData {
  std::string kind;
  Shape sample_shape;                        // [C, H, W] or [D]
  std::vector<std::uint8_t> u8;              // N * numel(sample_shape) pixels, or empty
  std::vector<float> f32;                    // N * numel(sample_shape) values, or empty
  std::vector<std::int32_t> labels;          // all 0 when the targets are floats
  Shape target_shape;                        // regression: one sample's float target, else empty
  std::vector<float> targets;                // N * numel(target_shape), or empty
  int num_classes = 0;                       // 0: max label + 1
  std::optional<std::int32_t> ignore_label;  // a label that is no class (DataSpec::ignore_label)
  std::vector<std::string> class_names;      // empty: numbered
};

class InMemoryDataset : public Dataset {
 public:
  // Checks that the arrays agree in length and the labels lie in [0, num_classes) or are the
  // ignore_label; `where` names the source in errors.
  InMemoryDataset(InMemoryData data, const std::string& where);

  std::int64_t size() const override { return static_cast<std::int64_t>(d_.labels.size()); }
  const Shape& sample_shape() const override { return d_.sample_shape; }
  int num_classes() const override { return d_.num_classes; }
  const std::vector<std::string>& class_names() const override { return d_.class_names; }
  const std::string& kind() const override { return d_.kind; }
  std::int32_t label(std::int64_t index) const override;
  void read(std::int64_t index, float* out) const override;
  const Shape& target_shape() const override { return d_.target_shape; }
  void read_target(std::int64_t index, float* out) const override;

 private:
  InMemoryData d_;
};

}  // namespace ruche
