// The bias add and bias gradient of a convolution (conv_bias.h): one grid-stride kernel for the
// add, a two-pass channel reduction (channel_reduction.cuh) for the gradient.
#include "ops/cuda/conv_bias.h"

#include "ops/cuda/channel_reduction.cuh"
#include "ops/cuda/float_types.cuh"
#include "ops/cuda/kernel_util.h"

namespace ruche::ops::gpu {
namespace {

template <typename T>
__global__ void add_channel_bias_kernel(T* y, const T* b, ChannelData data) {
  const std::int64_t total = data.numel();
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    y[i] = from_float<T>(to_float(y[i]) + to_float(b[data.channel_of(i)]));
  }
}

// The channel's sum of dy, one term per value (reduce_channels' pass 1).
template <typename T>
struct AddGradient {
  const T* dy;
  __device__ void operator()(std::int64_t at, std::int64_t /*channel*/, double* sums) const {
    sums[0] += to_float(dy[at]);
  }
};

template <typename T>
struct StoreGradient {
  T* db;
  __device__ void operator()(std::int64_t channel, const double* totals) const {
    db[channel] = from_double<T>(totals[0]);
  }
};

template <typename T>
void add_bias_as(void* y, const void* b, const ChannelData& data, cudaStream_t stream) {
  const std::int64_t total = data.numel();
  if (total == 0) return;
  add_channel_bias_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      static_cast<T*>(y), static_cast<const T*>(b), data);
  CUDA_CHECK_LAUNCH(add_channel_bias_kernel);
}

template <typename T>
void bias_gradient_as(const void* dy, void* db, const ChannelData& data, cudaStream_t stream) {
  reduce_channels<1>(data, AddGradient<T>{static_cast<const T*>(dy)},
                     StoreGradient<T>{static_cast<T*>(db)}, stream);
}

}  // namespace

void add_channel_bias(DType dtype, void* y, const void* b, std::int64_t n, std::int64_t channels,
                      std::int64_t plane, bool channels_last, cudaStream_t stream) {
  const ChannelData data{n, channels, plane, channels_last};
  const bool known =
      visit_float_dtype(dtype, [&](auto zero) { add_bias_as<decltype(zero)>(y, b, data, stream); });
  RUCHE_REQUIRE(known) << "add_channel_bias: unsupported dtype " << dtype_name(dtype);
}

void channel_bias_gradient(DType dtype, const void* dy, void* db, std::int64_t n,
                           std::int64_t channels, std::int64_t plane, bool channels_last,
                           cudaStream_t stream) {
  const ChannelData data{n, channels, plane, channels_last};
  const bool known = visit_float_dtype(
      dtype, [&](auto zero) { bias_gradient_as<decltype(zero)>(dy, db, data, stream); });
  RUCHE_REQUIRE(known) << "channel_bias_gradient: unsupported dtype " << dtype_name(dtype);
}

}  // namespace ruche::ops::gpu
