// Per-sample transforms: augmentation then normalisation, torchvision's order
// (RandomCrop(padding) -> RandomHorizontalFlip -> ToTensor -> Normalize -> RandomErasing).
// Every random choice comes from Philox keyed by (seed, RngPurpose::augment, epoch, sample
// index), so a sample looks the same whichever thread, rank or resume produces it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/data/dataset.h"

namespace ruche {

// What the loader does to read()'s values after augmentation (the run's record,
// engine/data/preprocess.h), in this order: times rescale, channels reversed (RGB -> BGR), minus
// mean_image, then per channel minus mean and over std. An empty vector skips its step.
struct Normalization {
  Normalization() = default;
  Normalization(std::vector<float> per_channel_mean, std::vector<float> per_channel_std)
      : mean(std::move(per_channel_mean)),
        std(std::move(per_channel_std)) {}

  std::vector<float> mean;        // per channel
  std::vector<float> std;         // per channel
  float rescale = 1;              // the record's scale over the source's own (1/255 for pixels)
  bool reverse_channels = false;  // the net reads BGR
  std::vector<float> mean_image;  // the sample's numel values (Caffe's mean_file)
  bool empty() const {
    return mean.empty() && std.empty() && rescale == 1 && !reverse_channels && mean_image.empty();
  }
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

// --noise: corrupts the input only (a denoising autoencoder), after augmentation and the copy
// taken as the target, before normalisation, on the values read() gives ([0, 1] for pixels).
struct NoiseOptions {
  enum class Kind { none, gaussian, mask };
  Kind kind = Kind::none;
  float amount = 0;  // gaussian: the standard deviation; mask: the probability of a zero
};
// "" (none), "gaussian:S" or "mask:P" (P in [0, 1)); anything else is a ruche::Error.
NoiseOptions parse_noise(const std::string& spec);

struct TransformOptions {
  Normalization norm;
  AugmentOptions augment;
  NoiseOptions noise;
  std::uint64_t seed = 1;
};

class Transform {
 public:
  Transform(const Shape& sample_shape, TransformOptions options);

  // Transforms one sample in place (C-major, values as Dataset::read gives them). scratch holds
  // scratch_floats() floats. Augmentation applies to images [C, H, W] only.
  // With `target` (scratch_floats() floats), the augmented sample is copied there before noise
  // and normalisation: the reconstruction target (--reconstruct).
  void apply(float* x, float* scratch, std::uint32_t epoch, std::uint64_t index,
             float* target = nullptr) const;
  // A float target (regression, Dataset::target_shape) whose trailing dimensions are the input's
  // H x W (a mask, a depth map, a denoised image) gets the same crop and flip as sample `index`
  // got from apply() with the same epoch; any other target is left alone (it is not spatial).
  // scratch holds target_shape.numel() floats.
  void augment_target(float* target, const Shape& target_shape, float* scratch, std::uint32_t epoch,
                      std::uint64_t index) const;
  // Whether augment_target moves a target of this shape.
  bool target_follows(const Shape& target_shape) const;
  std::size_t scratch_floats() const { return static_cast<std::size_t>(shape_.numel()); }
  bool augments() const;
  // The normalisation alone (what evaluation and export apply to a sample).
  void normalize(float* x) const;

 private:
  void add_noise(float* x, std::uint32_t epoch, std::uint64_t index) const;
  // The crop and flip of sample `index` (as apply draws them) on `planes` planes of H x W.
  void crop_flip(float* x, std::int64_t planes, float* scratch, std::uint32_t epoch,
                 std::uint64_t index) const;

  Shape shape_;
  TransformOptions o_;
  int padding_ = 0;
};

}  // namespace ruche
