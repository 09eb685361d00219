#include "engine/optim/loss_scaler.h"

#include <cmath>

#include "engine/error.h"

namespace ruche {

LossScaler::LossScaler(const LossScalerOptions& options)
    : options_(options),
      scale_(options.init_scale) {
  const LossScalerOptions& o = options_;
  RUCHE_REQUIRE(o.init_scale > 0 && std::isfinite(o.init_scale))
      << "loss scaler: init_scale must be finite and > 0, got " << o.init_scale;
  RUCHE_REQUIRE(o.growth_factor > 1 && std::isfinite(o.growth_factor))
      << "loss scaler: growth_factor must be > 1, got " << o.growth_factor;
  RUCHE_REQUIRE(o.backoff_factor > 0 && o.backoff_factor < 1)
      << "loss scaler: backoff_factor must be in (0, 1), got " << o.backoff_factor;
  RUCHE_REQUIRE(o.growth_interval >= 1)
      << "loss scaler: growth_interval must be >= 1, got " << o.growth_interval;
}

float LossScaler::inv_scale() const {
  return static_cast<float>(1.0 / static_cast<double>(scale_));
}

bool LossScaler::update(bool grads_finite) {
  if (!grads_finite) {
    scale_ *= options_.backoff_factor;
    growth_tracker_ = 0;
    ++skipped_;
    return false;
  }
  if (++growth_tracker_ == options_.growth_interval) {
    const float grown = scale_ * options_.growth_factor;
    if (std::isfinite(grown)) scale_ = grown;  // GradScaler keeps the scale rather than reach inf
    growth_tracker_ = 0;
  }
  return true;
}

void LossScaler::restore(float scale, int growth_tracker, std::int64_t skipped_steps) {
  RUCHE_REQUIRE(scale > 0 && std::isfinite(scale))
      << "loss scaler: restored scale must be finite and > 0, got " << scale;
  RUCHE_REQUIRE(growth_tracker >= 0 && growth_tracker < options_.growth_interval)
      << "loss scaler: restored growth tracker " << growth_tracker << " outside [0, "
      << options_.growth_interval << ")";
  RUCHE_REQUIRE(skipped_steps >= 0) << "loss scaler: restored skipped count " << skipped_steps;
  scale_ = scale;
  growth_tracker_ = growth_tracker;
  skipped_ = skipped_steps;
}

}  // namespace ruche
