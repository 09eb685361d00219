// What a training step tallies per row for its progress line (docs/ARCHITECTURE.md, One step): a
// classifier row's top-1 prediction and a regression row's errors. One definition serves the CPU
// ops, the CUDA kernels (ops::top1_hits, ops::regression_errors) and the host metrics, so the
// step's tallies and an evaluation's count alike.
#pragma once

#include <math.h>  // expf and fabs, the same names in host and device code

#include <cstdint>

#include "engine/host_device.h"

namespace ruche::ops {

// The first index of the largest score. A NaN is never larger, and nothing is larger than a NaN
// in first place: a row of NaNs predicts class 0.
RUCHE_HOST_DEVICE inline int argmax_row(const float* scores, std::int64_t classes) {
  int best = 0;
  for (std::int64_t c = 1; c < classes; ++c) {
    if (scores[c] > scores[best]) best = static_cast<int>(c);
  }
  return best;
}

// One row's errors, each the mean over its `width` values: squared and absolute error, and hits,
// the fraction of values on the target's side of 0.5 (multi-label 0/1 targets).
struct RowErrors {
  double squared = 0, absolute = 0, hits = 0;
};
// sigmoid: `prediction` holds logits, whose sigmoid is what is compared (SigmoidCrossEntropyLoss).
RUCHE_HOST_DEVICE inline RowErrors row_errors(const float* prediction, const float* target,
                                              std::int64_t width, bool sigmoid) {
  RowErrors e;
  std::int64_t same_side = 0;
  for (std::int64_t j = 0; j < width; ++j) {
    const float p = sigmoid ? 1.0f / (1.0f + expf(-prediction[j])) : prediction[j];
    const float t = target[j];
    const double d = static_cast<double>(p) - t;
    e.squared += d * d;
    e.absolute += fabs(d);
    same_side += (p >= 0.5f) == (t >= 0.5f);
  }
  const auto w = static_cast<double>(width);
  e.squared /= w;
  e.absolute /= w;
  e.hits = static_cast<double>(same_side) / w;
  return e;
}

}  // namespace ruche::ops
