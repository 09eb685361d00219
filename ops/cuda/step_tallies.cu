// A training step's tallies on CUDA: one block walks the rows with ops/step_tallies.h's row
// functions and sums them in a fixed tree (deterministic), writing the few numbers the host reads
// with the step's other values, so nothing here waits for the device.
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/kernel_util.h"
#include "ops/op_checks.h"
#include "ops/step_tallies.h"

namespace ruche::ops::gpu {
namespace {

__global__ void top1_hits_kernel(std::int64_t n, std::int64_t classes, const float* probs,
                                 const std::int32_t* labels, std::int64_t ignored, float* out) {
  __shared__ double shared[32];
  double correct = 0.0, counted = 0.0;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    if (labels[i] == ignored) continue;
    correct += argmax_row(probs + i * classes, classes) == labels[i] ? 1.0 : 0.0;
    counted += 1.0;
  }
  correct = block_reduce(correct, shared, SumOp{});
  counted = block_reduce(counted, shared, SumOp{});
  if (threadIdx.x == 0) {
    out[0] = static_cast<float>(correct);
    out[1] = static_cast<float>(counted);
  }
}

__global__ void regression_errors_kernel(std::int64_t n, std::int64_t width,
                                         const float* prediction, const float* target, bool sigmoid,
                                         float* out) {
  __shared__ double shared[32];
  RowErrors sum;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const RowErrors e = row_errors(prediction + i * width, target + i * width, width, sigmoid);
    sum.hits += e.hits;
    sum.squared += e.squared;
    sum.absolute += e.absolute;
  }
  const double hits = block_reduce(sum.hits, shared, SumOp{});
  const double squared = block_reduce(sum.squared, shared, SumOp{});
  const double absolute = block_reduce(sum.absolute, shared, SumOp{});
  if (threadIdx.x == 0) {
    out[0] = static_cast<float>(hits);
    out[1] = static_cast<float>(squared);
    out[2] = static_cast<float>(absolute);
  }
}

}  // namespace

void top1_hits(const Tensor& probs, const Tensor& labels, std::int64_t n, std::int64_t ignored,
               Tensor& out) {
  const std::int64_t classes = check_top1_hits(probs, labels, n, out);
  check_arg(probs, "top1_hits", "probs");
  check_arg(out, "top1_hits", "out");
  use_device_of(probs);
  top1_hits_kernel<<<1, kThreads, 0, current_stream()>>>(
      n, classes, probs.data<float>(), labels.data<std::int32_t>(), ignored, out.data<float>());
  CUDA_CHECK_LAUNCH(top1_hits_kernel);
}

void regression_errors(const Tensor& prediction, const Tensor& target, std::int64_t n, bool sigmoid,
                       Tensor& out) {
  const std::int64_t width = check_regression_errors(prediction, target, n, out);
  check_arg(prediction, "regression_errors", "prediction");
  check_arg(out, "regression_errors", "out");
  use_device_of(prediction);
  regression_errors_kernel<<<1, kThreads, 0, current_stream()>>>(
      n, width, prediction.data<float>(), target.data<float>(), sigmoid, out.data<float>());
  CUDA_CHECK_LAUNCH(regression_errors_kernel);
}

}  // namespace ruche::ops::gpu
