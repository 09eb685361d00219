// Dynamic loss scaling for fp16 training, as torch.cuda.amp.GradScaler: the loss (so every
// gradient) is multiplied by scale() before backward, the gradients by inv_scale() before the
// optimizer step. A step whose gradients are not finite is skipped and the scale backed off; after
// growth_interval finite steps in a row the scale grows. Host-side bookkeeping only: the caller
// finds finiteness (grad_stats) and applies the factors (the backward's dloss, ops::scale).
#pragma once

#include <cstdint>

namespace ruche {

struct LossScalerOptions {
  float init_scale = 65536.0f;  // 2^16
  float growth_factor = 2.0f;
  float backoff_factor = 0.5f;
  int growth_interval = 2000;  // finite steps in a row before the scale grows
};

class LossScaler {
 public:
  // Throws ruche::Error on a bad option (init_scale > 0 and finite, growth_factor > 1,
  // backoff_factor in (0, 1), growth_interval >= 1).
  explicit LossScaler(const LossScalerOptions& options = {});

  float scale() const { return scale_; }
  // 1 / scale, rounded once from double (as GradScaler's scale.double().reciprocal().float()).
  float inv_scale() const;

  // After a step's gradients are known: true when they are finite and the step is to be taken
  // (the growth tracker counts it, and the scale grows at growth_interval, unless that would
  // overflow); false when the step is to be skipped (counted, the scale backed off, the tracker
  // reset).
  bool update(bool grads_finite);

  std::int64_t skipped_steps() const { return skipped_; }
  int growth_tracker() const { return growth_tracker_; }  // finite steps since the last change
  const LossScalerOptions& options() const { return options_; }

  // A checkpoint's state back (scale > 0 and finite, 0 <= tracker < growth_interval).
  void restore(float scale, int growth_tracker, std::int64_t skipped_steps);

 private:
  LossScalerOptions options_;
  float scale_;
  int growth_tracker_ = 0;
  std::int64_t skipped_ = 0;
};

}  // namespace ruche
