#include "engine/metrics/regression.h"

#include <cmath>

namespace ruche {

void RegressionTally::add(const float* prediction, const float* target, std::int64_t n,
                          std::int64_t width) {
  for (std::int64_t i = 0; i < n; ++i) {
    double sq = 0, ab = 0;
    std::int64_t same_side = 0;
    for (std::int64_t j = 0; j < width; ++j) {
      const float p = prediction[i * width + j], t = target[i * width + j];
      const double d = static_cast<double>(p) - t;
      sq += d * d;
      ab += std::abs(d);
      same_side += (p >= 0.5f) == (t >= 0.5f);
    }
    hits += static_cast<double>(same_side) / static_cast<double>(width);
    sq /= static_cast<double>(width);
    squared += sq;
    absolute += ab / static_cast<double>(width);
    if (keep_errors) errors.push_back(static_cast<float>(sq));
  }
  samples += n;
}

double RegressionTally::mse() const { return samples ? squared / static_cast<double>(samples) : 0; }

double RegressionTally::mae() const {
  return samples ? absolute / static_cast<double>(samples) : 0;
}

double RegressionTally::accuracy() const {
  return samples ? hits / static_cast<double>(samples) : 0;
}

double RegressionTally::psnr(double peak) const { return 10.0 * std::log10(peak * peak / mse()); }

}  // namespace ruche
