// Per-sample transforms: augmentation then normalisation, torchvision's order
// (RandomCrop(padding) -> RandomHorizontalFlip -> ToTensor -> Normalize -> RandomErasing).
// Every random choice comes from Philox keyed by (seed, RngPurpose::augment, epoch, sample
// index), so a sample looks the same whichever thread, rank or resume produces it.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/data/dataset.h"

namespace ruche {

// Per-channel mean and standard deviation; empty: no normalisation.
struct Normalization {
  std::vector<float> mean;
  std::vector<float> std;
};

// Known values for Fashion-MNIST (0.2860 / 0.3530), MNIST, CIFAR-10 and CIFAR-100; none for
// synthetic data (already standard normal); otherwise computed from `train`.
Normalization default_normalization(const Dataset& train);
// Mean and (population) standard deviation per channel over up to max_samples samples of d,
// evenly spaced. A vector sample [D] counts as one channel.
Normalization compute_normalization(const Dataset& d, std::int64_t max_samples = 10000);

struct AugmentOptions {
  bool enabled = true;    // --no-augment turns everything below off
  int crop_padding = -1;  // zero pad then crop back; -1: 4 for images >= 32 px, else 2; 0: none
  bool hflip = true;      // with probability 0.5
  float erase_p = 0.0f;   // RandomErasing: area 0.02-0.33, aspect 0.3-3.3, fill 0
};

struct TransformOptions {
  Normalization norm;
  AugmentOptions augment;
  std::uint64_t seed = 1;
};

class Transform {
 public:
  Transform(const Shape& sample_shape, TransformOptions options);

  // Transforms one sample in place (C-major, values as Dataset::read gives them). scratch holds
  // scratch_floats() floats. Augmentation applies to images [C, H, W] only.
  void apply(float* sample, float* scratch, std::uint32_t epoch, std::uint64_t index) const;
  std::size_t scratch_floats() const { return static_cast<std::size_t>(shape_.numel()); }
  bool augments() const;

 private:
  Shape shape_;
  TransformOptions o_;
  int padding_ = 0;
};

}  // namespace ruche
