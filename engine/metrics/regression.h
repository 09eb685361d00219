// Regression and reconstruction metrics (docs/ARCHITECTURE.md, Tasks): the mean squared error,
// the mean absolute error and the PSNR over samples, from each sample's own errors.
#pragma once

#include <cstdint>
#include <vector>

namespace ruche {

// Sums over samples; each sample counts once whatever its size (the mean of its elements), so a
// split's MSE is the mean over samples of the per-sample MSE (= the mean over all elements).
struct RegressionTally {
  double squared = 0;   // sum over samples of each sample's mean squared error
  double absolute = 0;  // sum over samples of each sample's mean absolute error
  // sum over samples of the fraction of a sample's values on the target's side of 0.5: the
  // per-element accuracy of multi-label 0/1 targets (prediction: sigmoid of the logits)
  double hits = 0;
  std::int64_t samples = 0;
  bool keep_errors = false;
  std::vector<float> errors;  // with keep_errors: each sample's mean squared error, in order

  // Adds rows [0, n) of prediction and target, each row `width` f32 values (ops::row_errors, as
  // a training step tallies them); sigmoid: prediction holds logits.
  void add(const float* prediction, const float* target, std::int64_t n, std::int64_t width,
           bool sigmoid = false);
  double mse() const;
  double mae() const;
  double accuracy() const;  // hits / samples
  // 10 log10(peak^2 / mse) in dB: peak 1 is the range of a [0, 1] target (images).
  double psnr(double peak = 1.0) const;
};

}  // namespace ruche
