#include "engine/data/in_memory.h"

#include <algorithm>

#include "engine/error.h"

namespace ruche {

std::vector<std::string> numbered_class_names(int n) {
  std::vector<std::string> names;
  names.reserve(static_cast<std::size_t>(std::max(n, 0)));
  for (int i = 0; i < n; ++i) names.push_back(std::to_string(i));
  return names;
}

InMemoryDataset::InMemoryDataset(InMemoryData data, const std::string& where)
    : d_(std::move(data)) {
  const std::size_t n = d_.labels.size();
  const auto numel = static_cast<std::size_t>(d_.sample_shape.numel());
  const std::size_t values = d_.u8.empty() ? d_.f32.size() : d_.u8.size();
  RUCHE_CHECK(d_.u8.empty() || d_.f32.empty()) << where << ": both u8 and f32 samples";
  RUCHE_REQUIRE(values == n * numel)
      << where << ": " << n << " labels but " << values << " values for samples of shape "
      << d_.sample_shape.str() << " (expected " << n * numel << ")";
  RUCHE_REQUIRE(n > 0) << where << ": no samples";
  RUCHE_REQUIRE(
      d_.targets.size() ==
      (d_.target_shape.ndim() ? n * static_cast<std::size_t>(d_.target_shape.numel()) : 0))
      << where << ": " << d_.targets.size() << " target values for " << n << " samples of target "
      << d_.target_shape.str();
  std::int32_t max_label = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (d_.labels[i] == d_.ignore_label) continue;
    RUCHE_REQUIRE(d_.labels[i] >= 0) << where << ": sample " << i << " has label " << d_.labels[i]
                                     << " (expected a class index >= 0)";
    max_label = std::max(max_label, d_.labels[i]);
  }
  if (d_.num_classes == 0) d_.num_classes = std::max<int>(max_label + 1, d_.class_names.size());
  RUCHE_REQUIRE(max_label < d_.num_classes)
      << where << ": label " << max_label << " but only " << d_.num_classes << " classes";
  if (d_.class_names.empty()) d_.class_names = numbered_class_names(d_.num_classes);
  RUCHE_REQUIRE(static_cast<int>(d_.class_names.size()) == d_.num_classes)
      << where << ": " << d_.class_names.size() << " class names for " << d_.num_classes
      << " classes";
}

std::int32_t InMemoryDataset::label(std::int64_t index) const {
  return d_.labels[static_cast<std::size_t>(index)];
}

void InMemoryDataset::read(std::int64_t index, float* out) const {
  const auto numel = static_cast<std::size_t>(d_.sample_shape.numel());
  const std::size_t at = static_cast<std::size_t>(index) * numel;
  if (!d_.u8.empty()) {
    const std::uint8_t* p = d_.u8.data() + at;
    for (std::size_t i = 0; i < numel; ++i)
      out[i] = static_cast<float>(p[i]) / 255.0f;  // as torchvision ToTensor
  } else {
    std::copy_n(d_.f32.data() + at, numel, out);
  }
}

void InMemoryDataset::read_target(std::int64_t index, float* out) const {
  const auto numel = static_cast<std::size_t>(d_.target_shape.numel());
  std::copy_n(d_.targets.data() + static_cast<std::size_t>(index) * numel, numel, out);
}

}  // namespace ruche
