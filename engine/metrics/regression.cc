#include "engine/metrics/regression.h"

#include <cmath>

#include "ops/step_tallies.h"

namespace ruche {

void RegressionTally::add(const float* prediction, const float* target, std::int64_t n,
                          std::int64_t width, bool sigmoid) {
  for (std::int64_t i = 0; i < n; ++i) {
    const ops::RowErrors e =
        ops::row_errors(prediction + i * width, target + i * width, width, sigmoid);
    hits += e.hits;
    squared += e.squared;
    absolute += e.absolute;
    if (keep_errors) errors.push_back(static_cast<float>(e.squared));
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
