// The bias add and bias gradient of a convolution (conv_bias.h): one grid-stride kernel for the
// add, one block per channel for the gradient.
#include "ops/cuda/conv_bias.h"

#include "ops/cuda/float_types.cuh"
#include "ops/cuda/kernel_util.h"

namespace ruche::ops::gpu {
namespace {

template <typename T>
__global__ void add_channel_bias_kernel(T* y, const T* b, std::int64_t total, std::int64_t channels,
                                        std::int64_t plane) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const std::int64_t c = (i / plane) % channels;
    y[i] = from_float<T>(to_float(y[i]) + to_float(b[c]));
  }
}

// Block c sums channel c: thread t takes positions t, t + blockDim.x, ... of the channel's
// n * plane values (consecutive threads read consecutive addresses within a plane), then the
// block's fixed tree adds the threads' partial sums.
template <typename T>
__global__ void channel_bias_gradient_kernel(const T* dy, T* db, std::int64_t n,
                                             std::int64_t channels, std::int64_t plane) {
  __shared__ double shared[32];
  const std::int64_t c = blockIdx.x;
  const std::int64_t count = n * plane;
  double sum = 0;
  for (std::int64_t j = threadIdx.x; j < count; j += blockDim.x) {
    const std::int64_t image = j / plane, position = j % plane;
    sum += to_float(dy[(image * channels + c) * plane + position]);
  }
  sum = block_reduce(sum, shared, SumOp{});
  if (threadIdx.x == 0) db[c] = from_double<T>(sum);
}

template <typename T>
void add_bias_as(void* y, const void* b, std::int64_t n, std::int64_t channels, std::int64_t plane,
                 cudaStream_t stream) {
  const std::int64_t total = n * channels * plane;
  if (total == 0) return;
  add_channel_bias_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<T*>(y), static_cast<const T*>(b), total, channels, plane);
  CUDA_CHECK_LAUNCH(add_channel_bias_kernel);
}

template <typename T>
void bias_gradient_as(const void* dy, void* db, std::int64_t n, std::int64_t channels,
                      std::int64_t plane, cudaStream_t stream) {
  if (channels == 0) return;
  channel_bias_gradient_kernel<T><<<static_cast<unsigned>(channels), kThreads, 0, stream>>>(
      static_cast<const T*>(dy), static_cast<T*>(db), n, channels, plane);
  CUDA_CHECK_LAUNCH(channel_bias_gradient_kernel);
}

}  // namespace

void add_channel_bias(DType dtype, void* y, const void* b, std::int64_t n, std::int64_t channels,
                      std::int64_t plane, cudaStream_t stream) {
  const bool known = visit_float_dtype(
      dtype, [&](auto zero) { add_bias_as<decltype(zero)>(y, b, n, channels, plane, stream); });
  RUCHE_REQUIRE(known) << "add_channel_bias: unsupported dtype " << dtype_name(dtype);
}

void channel_bias_gradient(DType dtype, const void* dy, void* db, std::int64_t n,
                           std::int64_t channels, std::int64_t plane, cudaStream_t stream) {
  const bool known = visit_float_dtype(dtype, [&](auto zero) {
    bias_gradient_as<decltype(zero)>(dy, db, n, channels, plane, stream);
  });
  RUCHE_REQUIRE(known) << "channel_bias_gradient: unsupported dtype " << dtype_name(dtype);
}

}  // namespace ruche::ops::gpu
