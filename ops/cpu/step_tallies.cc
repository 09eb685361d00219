// A training step's tallies on the CPU (ops/step_tallies.h's row functions over the rows).
#include "ops/op_checks.h"
#include "ops/step_tallies.h"

#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void top1_hits(const Tensor& probs, const Tensor& labels, std::int64_t n, std::int64_t ignored,
               Tensor& out) {
  const std::int64_t classes = check_top1_hits(probs, labels, n, out);
  const float* p = probs.data<float>();
  const std::int32_t* y = labels.data<std::int32_t>();
  std::int64_t correct = 0, counted = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (y[i] == ignored) continue;
    correct += argmax_row(p + i * classes, classes) == y[i];
    ++counted;
  }
  out.data<float>()[0] = static_cast<float>(correct);
  out.data<float>()[1] = static_cast<float>(counted);
}

void regression_errors(const Tensor& prediction, const Tensor& target, std::int64_t n, bool sigmoid,
                       Tensor& out) {
  const std::int64_t width = check_regression_errors(prediction, target, n, out);
  const float* p = prediction.data<float>();
  const float* t = target.data<float>();
  RowErrors sum;
  for (std::int64_t i = 0; i < n; ++i) {
    const RowErrors e = row_errors(p + i * width, t + i * width, width, sigmoid);
    sum.hits += e.hits;
    sum.squared += e.squared;
    sum.absolute += e.absolute;
  }
  float* o = out.data<float>();
  o[0] = static_cast<float>(sum.hits);
  o[1] = static_cast<float>(sum.squared);
  o[2] = static_cast<float>(sum.absolute);
}

}  // namespace ruche::ops::cpu
