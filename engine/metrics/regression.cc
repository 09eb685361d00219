#include "engine/metrics/regression.h"

#include <cmath>

namespace ruche {

void RegressionTally::add(const float* prediction, const float* target, std::int64_t n,
                          std::int64_t width) {
  for (std::int64_t i = 0; i < n; ++i) {
    double sq = 0, ab = 0;
    for (std::int64_t j = 0; j < width; ++j) {
      const double d = static_cast<double>(prediction[i * width + j]) - target[i * width + j];
      sq += d * d;
      ab += std::abs(d);
    }
    sq /= static_cast<double>(width);
    squared += sq;
    absolute += ab / static_cast<double>(width);
    if (keep_errors) errors.push_back(static_cast<float>(sq));
  }
  samples += n;
}

double RegressionTally::mse() const {
  return samples ? squared / static_cast<double>(samples) : 0;
}

double RegressionTally::mae() const {
  return samples ? absolute / static_cast<double>(samples) : 0;
}

double RegressionTally::psnr(double peak) const {
  return 10.0 * std::log10(peak * peak / mse());
}

}  // namespace ruche
