// Softmax over dim 1 of [N, C] on CUDA: one block per row, block reductions for the row's max and
// sums, so any C works and every row is computed the same way on every run.
#include <cstdint>

#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/kernel_util.h"

namespace ruche::ops::gpu {
namespace {

// Threads per row: a power of two from 32 to 256, about C.
unsigned row_threads(std::int64_t c) {
  unsigned t = 32;
  while (t < 256 && t < c) t *= 2;
  return t;
}

// Makes the block-reduced value in thread 0 every thread's.
__device__ float broadcast(float v, float* slot) {
  if (threadIdx.x == 0) *slot = v;
  __syncthreads();
  const float out = *slot;
  __syncthreads();
  return out;
}

__global__ void softmax_forward_kernel(std::int64_t c, const float* x, float* y) {
  __shared__ float shared[32];
  __shared__ float slot;
  const float* row = x + static_cast<std::int64_t>(blockIdx.x) * c;
  float* out = y + static_cast<std::int64_t>(blockIdx.x) * c;
  float m = -INFINITY;
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) m = fmaxf(m, row[j]);
  m = broadcast(block_reduce(m, shared, MaxOp{}), &slot);
  float sum = 0.0f;
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) sum += expf(row[j] - m);
  sum = broadcast(block_reduce(sum, shared, SumOp{}), &slot);
  const float inv = 1.0f / sum;
  // y may alias x: every read of the row happened before the last broadcast's barrier.
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) out[j] = expf(row[j] - m) * inv;
}

// dx = y * (dy - sum_j dy_j y_j), per row.
__global__ void softmax_backward_kernel(std::int64_t c, const float* y, const float* dy,
                                        float* dx) {
  __shared__ float shared[32];
  __shared__ float slot;
  const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * c;
  float dot = 0.0f;
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) dot += dy[base + j] * y[base + j];
  dot = broadcast(block_reduce(dot, shared, SumOp{}), &slot);
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    dx[base + j] = y[base + j] * (dy[base + j] - dot);
  }
}

void check_rows(const Tensor& t, const char* op, const char* name) {
  RUCHE_REQUIRE(t.ndim() == 2) << op << ": " << name << " must be [N, C], got " << t.str();
  RUCHE_REQUIRE(t.size(0) < (std::int64_t{1} << 31))
      << op << ": " << t.size(0) << " rows exceed one CUDA grid";
}

}  // namespace

void softmax_forward(const Tensor& x, Tensor& y) {
  constexpr const char* op = "softmax_forward";
  check_arg(x, op, "x");
  check_arg(y, op, "y");
  check_rows(x, op, "x");
  check_shape_as(y, x, op, "y", "x");
  const std::int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  use_device_of(x);
  softmax_forward_kernel<<<static_cast<unsigned>(n), row_threads(c), 0, current_stream()>>>(
      c, x.data<float>(), y.data<float>());
  CUDA_CHECK_LAUNCH(softmax_forward_kernel);
}

void softmax_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  constexpr const char* op = "softmax_backward";
  check_arg(y, op, "y");
  check_arg(dy, op, "dy");
  check_arg(dx, op, "dx");
  check_rows(y, op, "y");
  check_shape_as(dy, y, op, "dy", "y");
  check_shape_as(dx, y, op, "dx", "y");
  const std::int64_t n = y.size(0), c = y.size(1);
  if (n == 0 || c == 0) return;
  use_device_of(y);
  softmax_backward_kernel<<<static_cast<unsigned>(n), row_threads(c), 0, current_stream()>>>(
      c, y.data<float>(), dy.data<float>(), dx.data<float>());
  CUDA_CHECK_LAUNCH(softmax_backward_kernel);
}

}  // namespace ruche::ops::gpu
