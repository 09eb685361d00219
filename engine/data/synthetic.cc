#include "engine/data/synthetic.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/rng/philox.h"

namespace ruche {

SyntheticDataset::SyntheticDataset(const SyntheticOptions& o)
    : shape_(o.sample_shape),
      size_(o.size),
      pool_(std::min(o.pool, o.size)),
      seed_(o.seed) {
  RUCHE_REQUIRE(o.size > 0 && o.pool > 0)
      << "synthetic data: size " << o.size << " and pool " << o.pool << ", expected both > 0";
  RUCHE_REQUIRE(o.num_classes > 0) << "synthetic data: " << o.num_classes << " classes";
  RUCHE_REQUIRE(shape_.ndim() > 0 && shape_.numel() > 0)
      << "synthetic data: sample shape " << shape_.str();
  names_ = numbered_class_names(o.num_classes);
  const std::int64_t numel = shape_.numel();
  values_.resize(static_cast<std::size_t>(pool_ * numel));
  for (std::int64_t i = 0; i < pool_; ++i) {
    const RngStream s{seed_, RngPurpose::synthetic, 0, static_cast<std::uint32_t>(i), 0};
    float* p = values_.data() + i * numel;
    for (std::int64_t j = 0; j < numel; ++j) p[j] = rng_normal(s, static_cast<std::uint64_t>(j));
  }
}

std::int32_t SyntheticDataset::label(std::int64_t index) const {
  const RngStream s{seed_, RngPurpose::synthetic, 0, static_cast<std::uint32_t>(index), 1};
  const std::uint64_t bits = rng_bits(s, 0);
  return static_cast<std::int32_t>((bits * names_.size()) >> 32);
}

void SyntheticDataset::read(std::int64_t index, float* out) const {
  const std::int64_t numel = shape_.numel();
  std::copy_n(values_.data() + (index % pool_) * numel, numel, out);
}

}  // namespace ruche
