// Softmax over dim 1 of [N, C] on CUDA: one block per row, block reductions for the row's max and
// sums, so any C works and every row is computed the same way on every run. Tensors are f32, bf16
// or f16 (one dtype per call): loaded as float, computed in float, rounded once on store.
#include <cstdint>

#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/float_types.cuh"
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

template <typename T>
__global__ void softmax_forward_kernel(std::int64_t c, const T* x, T* y) {
  __shared__ float shared[32];
  __shared__ float slot;
  const T* row = x + static_cast<std::int64_t>(blockIdx.x) * c;
  T* out = y + static_cast<std::int64_t>(blockIdx.x) * c;
  float m = -INFINITY;
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) m = fmaxf(m, to_float(row[j]));
  m = broadcast(block_reduce(m, shared, MaxOp{}), &slot);
  float sum = 0.0f;
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) sum += expf(to_float(row[j]) - m);
  sum = broadcast(block_reduce(sum, shared, SumOp{}), &slot);
  const float inv = 1.0f / sum;
  // y may alias x: every read of the row happened before the last broadcast's barrier.
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    out[j] = from_float<T>(expf(to_float(row[j]) - m) * inv);
  }
}

// dx = y * (dy - sum_j dy_j y_j), per row.
// dx may alias dy: every read of dy for the dot happened before the broadcast's barrier, and each
// thread reads dy[j] before it writes dx[j].
template <typename T>
__global__ void softmax_backward_kernel(std::int64_t c, const T* y, const T* dy, T* dx) {
  __shared__ float shared[32];
  __shared__ float slot;
  const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * c;
  float dot = 0.0f;
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    dot += to_float(dy[base + j]) * to_float(y[base + j]);
  }
  dot = broadcast(block_reduce(dot, shared, SumOp{}), &slot);
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    dx[base + j] = from_float<T>(to_float(y[base + j]) * (to_float(dy[base + j]) - dot));
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
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(y, op, "y", dtype);
  check_rows(x, op, "x");
  check_shape_as(y, x, op, "y", "x");
  const std::int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    softmax_forward_kernel<T><<<static_cast<unsigned>(n), row_threads(c), 0, current_stream()>>>(
        c, static_cast<const T*>(x.raw_data()), static_cast<T*>(y.raw_data()));
    CUDA_CHECK_LAUNCH(softmax_forward_kernel);
  });
}

void softmax_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  constexpr const char* op = "softmax_backward";
  const DType dtype = call_dtype(y, op, "y");
  check_arg(y, op, "y", dtype);
  check_arg(dy, op, "dy", dtype);
  check_arg(dx, op, "dx", dtype);
  check_rows(y, op, "y");
  check_shape_as(dy, y, op, "dy", "y");
  check_shape_as(dx, y, op, "dx", "y");
  const std::int64_t n = y.size(0), c = y.size(1);
  if (n == 0 || c == 0) return;
  use_device_of(y);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    softmax_backward_kernel<T><<<static_cast<unsigned>(n), row_threads(c), 0, current_stream()>>>(
        c, static_cast<const T*>(y.raw_data()), static_cast<const T*>(dy.raw_data()),
        static_cast<T*>(dx.raw_data()));
    CUDA_CHECK_LAUNCH(softmax_backward_kernel);
  });
}

}  // namespace ruche::ops::gpu
