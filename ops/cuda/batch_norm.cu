// The kernels of batch norm on CUDA: the small per-channel conversions around cuDNN's batch norm,
// and the synchronized batch norm's pieces, which mirror the CPU loops of ops/cpu/batch_norm.cc
// (sums in double, rounded once). The per-channel sums are reduce_channels' two passes
// (channel_reduction.cuh): a channels x chunks grid and a fixed order, so a result is the same
// run to run. Data is plain or channels-last: every kernel finds a value through Planes.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/batch_norm_kernels.h"
#include "ops/cuda/channel_reduction.cuh"
#include "ops/cuda/kernel_util.h"

namespace ruche::ops::gpu::bn {
namespace {

constexpr std::int64_t kMaxGridY = 65535;

__device__ float to_float(float v) { return v; }
__device__ float to_float(__half v) { return __half2float(v); }
__device__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ T from_float(float v);
template <>
__device__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Calls f(Tag<T>{}) with T the element type of `dtype`.
template <typename T>
struct Tag {
  using type = T;
};
template <typename F>
void dispatch(DType dtype, F f) {
  switch (dtype) {
    case DType::f32:
      f(Tag<float>{});
      return;
    case DType::f16:
      f(Tag<__half>{});
      return;
    case DType::bf16:
      f(Tag<__nv_bfloat16>{});
      return;
    default:
      break;
  }
  RUCHE_FAIL() << "batch norm: no CUDA kernel for " << dtype_name(dtype);
}

__global__ void fill_kernel(std::int64_t n, float value, float* out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    out[i] = value;
  }
}

__global__ void finish_training_stats_kernel(std::int64_t c, float unbias, const float* save_mean,
                                             const float* save_invstd, float* save_var,
                                             float* running_mean, float* running_var, float eps,
                                             float m) {
  const std::int64_t ch = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  // Rounding can leave a constant channel's variance slightly negative: clamp, as the CPU does.
  const double invstd = save_invstd[ch];
  const float var =
      static_cast<float>(fmax(0.0, 1.0 / (invstd * invstd) - static_cast<double>(eps)));
  save_var[ch] = var;
  // The CPU op's float arithmetic, term for term.
  running_mean[ch] = (1 - m) * running_mean[ch] + m * save_mean[ch];
  running_var[ch] = (1 - m) * running_var[ch] + m * var * unbias;
}

__global__ void inverse_std_kernel(std::int64_t c, const float* save_var, float eps,
                                   float* invstd) {
  const std::int64_t ch = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  invstd[ch] = static_cast<float>(1.0 / sqrt(static_cast<double>(save_var[ch]) + eps));
}

// sum(x) and sum(x^2) of a channel (reduce_channels' pass 1).
template <typename T>
struct AddStats {
  const T* x;
  __device__ void operator()(std::int64_t at, std::int64_t /*ch*/, double* sums) const {
    const double v = to_float(x[at]);
    sums[0] += v;
    sums[1] += v * v;
  }
};

// stats [2C + 1]: the sums, then the count (channel 0 writes it).
struct StoreStats {
  float* stats;
  std::int64_t c, count;
  __device__ void operator()(std::int64_t ch, const double* totals) const {
    stats[ch] = static_cast<float>(totals[0]);
    stats[c + ch] = static_cast<float>(totals[1]);
    if (ch == 0) stats[2 * c] = static_cast<float>(count);
  }
};

__global__ void stats_to_moments_kernel(std::int64_t c, const float* stats, float* running_mean,
                                        float* running_var, float* save_mean, float* save_var,
                                        double m) {
  const std::int64_t ch = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  const double n = stats[2 * c];
  if (!(n > 1)) {
    // The CPU op throws here; the count lives on the device and reading it would stall the
    // stream every layer, so the batch statistics become NaN (the trainer's NaN guard skips the
    // step) and the running statistics stay as they were.
    save_mean[ch] = NAN;
    save_var[ch] = NAN;
    return;
  }
  const double unbias = n / (n - 1);
  const double mean = stats[ch] / n;
  const double var = fmax(0.0, stats[c + ch] / n - mean * mean);
  save_mean[ch] = static_cast<float>(mean);
  save_var[ch] = static_cast<float>(var);
  running_mean[ch] = static_cast<float>((1 - m) * running_mean[ch] + m * mean);
  running_var[ch] = static_cast<float>((1 - m) * running_var[ch] + m * var * unbias);
}

// sum(dy) and sum(dy * (x - mean)) of a channel (reduce_channels' pass 1).
template <typename T>
struct AddBackwardSums {
  const T* dy;
  const T* x;
  const float* save_mean;
  __device__ void operator()(std::int64_t at, std::int64_t ch, double* sums) const {
    const float g = to_float(dy[at]);
    sums[0] += g;
    sums[1] += static_cast<double>(g) * (to_float(x[at]) - static_cast<double>(save_mean[ch]));
  }
};

// sums [2C + 1]: sum(dy), sum(dy * x_hat), then the count; dgamma and dbeta (nullable) too.
struct StoreBackwardSums {
  const float* save_var;
  float eps;
  float* sums;
  float* dgamma;
  float* dbeta;
  std::int64_t c, count;
  __device__ void operator()(std::int64_t ch, const double* totals) const {
    const float sum_dy_xhat =
        static_cast<float>(totals[1] / sqrt(static_cast<double>(save_var[ch]) + eps));
    sums[ch] = static_cast<float>(totals[0]);
    sums[c + ch] = sum_dy_xhat;
    if (dbeta) dbeta[ch] = static_cast<float>(totals[0]);
    if (dgamma) dgamma[ch] = sum_dy_xhat;
    if (ch == 0) sums[2 * c] = static_cast<float>(count);
  }
};

// The CPU op's per-channel factors, in the same precisions: dx = k * (dy - a - (x - mean) * b).
struct BackwardFactors {
  float k, a, b, mean;
};
__device__ BackwardFactors backward_factors(std::int64_t ch, std::int64_t c, const float* gamma,
                                            const float* save_mean, const float* save_var,
                                            const float* sums, float eps) {
  const double total = sums[2 * c];
  const double invstd = 1.0 / sqrt(static_cast<double>(save_var[ch]) + eps);
  return {static_cast<float>((gamma ? gamma[ch] : 1.0) * invstd),
          static_cast<float>(sums[ch] / total), static_cast<float>(sums[c + ch] / total * invstd),
          save_mean[ch]};
}

// y = k * (x - m) + shift, the CPU op's factors in the same precisions.
struct NormalizeFactors {
  float k, shift, m;
};
__device__ NormalizeFactors normalize_factors(std::int64_t ch, const float* mean, const float* var,
                                              float eps, const float* gamma, const float* beta) {
  const double invstd = 1.0 / sqrt(static_cast<double>(var[ch]) + eps);
  return {static_cast<float>((gamma ? gamma[ch] : 1.0) * invstd), beta ? beta[ch] : 0.0f, mean[ch]};
}

template <typename T>
__device__ void apply_backward(const BackwardFactors& f, const T* dy, const T* x, T* dx,
                               std::int64_t at) {
  dx[at] = from_float<T>(f.k * (to_float(dy[at]) - f.a - (to_float(x[at]) - f.mean) * f.b));
}

template <typename T>
__device__ void apply_normalize(const NormalizeFactors& f, const T* x, T* y, std::int64_t at) {
  y[at] = from_float<T>(f.k * (to_float(x[at]) - f.m) + f.shift);
}

// Plain data. Grid: x = channel, y = chunks of that channel's values (contiguous planes).
template <typename T>
__global__ void backward_apply_kernel(const T* dy, const T* x, const float* gamma,
                                      const float* save_mean, const float* save_var,
                                      const float* sums, T* dx, Planes g, float eps) {
  const std::int64_t ch = blockIdx.x;
  const BackwardFactors f = backward_factors(ch, g.channels, gamma, save_mean, save_var, sums, eps);
  const std::int64_t count = g.per_channel();
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.y) * blockDim.x;
  for (std::int64_t j = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; j < count;
       j += stride) {
    apply_backward(f, dy, x, dx, g.value_offset(ch, j));
  }
}

template <typename T>
__global__ void normalize_kernel(const T* x, const float* mean, const float* var, float eps,
                                 const float* gamma, const float* beta, T* y, Planes g) {
  const std::int64_t ch = blockIdx.x;
  const NormalizeFactors f = normalize_factors(ch, mean, var, eps, gamma, beta);
  const std::int64_t count = g.per_channel();
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.y) * blockDim.x;
  for (std::int64_t j = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; j < count;
       j += stride) {
    apply_normalize(f, x, y, g.value_offset(ch, j));
  }
}

// Channels-last data, rows of [N * H * W, C]: a block is kTileChannels channels (x) by kTileRows
// rows (y), so a warp reads 32 neighbouring channels of one row, and each thread keeps its one
// channel's factors. The same factors and arithmetic as the plain kernels: the same bits.
constexpr int kTileChannels = 32, kTileRows = kThreads / kTileChannels;

template <typename T>
__global__ void backward_apply_nhwc_kernel(const T* dy, const T* x, const float* gamma,
                                           const float* save_mean, const float* save_var,
                                           const float* sums, T* dx, Planes g, float eps) {
  const std::int64_t ch = static_cast<std::int64_t>(blockIdx.x) * kTileChannels + threadIdx.x;
  if (ch >= g.channels) return;
  const BackwardFactors f = backward_factors(ch, g.channels, gamma, save_mean, save_var, sums, eps);
  const std::int64_t rows = g.per_channel();
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.y) * kTileRows;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.y) * kTileRows + threadIdx.y; r < rows;
       r += stride) {
    apply_backward(f, dy, x, dx, r * g.channels + ch);
  }
}

template <typename T>
__global__ void normalize_nhwc_kernel(const T* x, const float* mean, const float* var, float eps,
                                      const float* gamma, const float* beta, T* y, Planes g) {
  const std::int64_t ch = static_cast<std::int64_t>(blockIdx.x) * kTileChannels + threadIdx.x;
  if (ch >= g.channels) return;
  const NormalizeFactors f = normalize_factors(ch, mean, var, eps, gamma, beta);
  const std::int64_t rows = g.per_channel();
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.y) * kTileRows;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.y) * kTileRows + threadIdx.y; r < rows;
       r += stride) {
    apply_normalize(f, x, y, r * g.channels + ch);
  }
}

// Plain: one block row per channel, enough columns to cover its values (capped by the grid's
// height). Channels-last: one block column per channel tile, enough rows of blocks for the rows.
dim3 per_channel_grid(const Planes& g) {
  if (g.channels_last) {
    return dim3(static_cast<unsigned>((g.channels + kTileChannels - 1) / kTileChannels),
                static_cast<unsigned>(std::clamp<std::int64_t>(
                    (g.per_channel() + kTileRows - 1) / kTileRows, 1, kMaxGridY)));
  }
  return dim3(static_cast<unsigned>(g.channels),
              static_cast<unsigned>(std::clamp<std::int64_t>(
                  (g.per_channel() + kThreads - 1) / kThreads, 1, kMaxGridY)));
}

dim3 per_channel_block(const Planes& g) {
  return g.channels_last ? dim3(kTileChannels, kTileRows) : dim3(kThreads);
}

}  // namespace

void fill(std::int64_t n, float value, float* out, cudaStream_t stream) {
  if (n == 0) return;
  fill_kernel<<<blocks_for(n), kThreads, 0, stream>>>(n, value, out);
  CUDA_CHECK_LAUNCH(fill_kernel);
}

void finish_training_stats(std::int64_t c, std::int64_t count, const float* save_mean,
                           const float* save_invstd, float* save_var, float* running_mean,
                           float* running_var, float eps, float momentum, cudaStream_t stream) {
  if (c == 0) return;
  const float unbias = static_cast<float>(count) / static_cast<float>(count - 1);
  finish_training_stats_kernel<<<blocks_for(c), kThreads, 0, stream>>>(
      c, unbias, save_mean, save_invstd, save_var, running_mean, running_var, eps, momentum);
  CUDA_CHECK_LAUNCH(finish_training_stats_kernel);
}

void inverse_std(std::int64_t c, const float* save_var, float eps, float* invstd,
                 cudaStream_t stream) {
  if (c == 0) return;
  inverse_std_kernel<<<blocks_for(c), kThreads, 0, stream>>>(c, save_var, eps, invstd);
  CUDA_CHECK_LAUNCH(inverse_std_kernel);
}

void local_stats(DType dtype, const void* x, const Planes& g, float* stats, cudaStream_t stream) {
  if (g.channels == 0) {  // the count alone
    return fill(1, static_cast<float>(g.per_channel()), stats, stream);
  }
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    reduce_channels<2>(g, AddStats<T>{static_cast<const T*>(x)},
                       StoreStats{stats, g.channels, g.per_channel()}, stream);
  });
}

void stats_to_moments(std::int64_t c, const float* stats, float* running_mean, float* running_var,
                      float* save_mean, float* save_var, float momentum, cudaStream_t stream) {
  if (c == 0) return;
  stats_to_moments_kernel<<<blocks_for(c), kThreads, 0, stream>>>(
      c, stats, running_mean, running_var, save_mean, save_var, static_cast<double>(momentum));
  CUDA_CHECK_LAUNCH(stats_to_moments_kernel);
}

void backward_reduce(DType dtype, const void* dy, const void* x, const Planes& g,
                     const float* save_mean, const float* save_var, float eps, float* sums,
                     float* dgamma, float* dbeta, cudaStream_t stream) {
  if (g.channels == 0) {  // the count alone
    return fill(1, static_cast<float>(g.per_channel()), sums, stream);
  }
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    reduce_channels<2>(
        g, AddBackwardSums<T>{static_cast<const T*>(dy), static_cast<const T*>(x), save_mean},
        StoreBackwardSums{save_var, eps, sums, dgamma, dbeta, g.channels, g.per_channel()}, stream);
  });
}

void normalize(DType dtype, const void* x, const Planes& g, const float* mean, const float* var,
               float eps, const float* gamma, const float* beta, void* y, cudaStream_t stream) {
  if (g.channels == 0 || g.per_channel() == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto* kernel = g.channels_last ? normalize_nhwc_kernel<T> : normalize_kernel<T>;
    kernel<<<per_channel_grid(g), per_channel_block(g), 0, stream>>>(
        static_cast<const T*>(x), mean, var, eps, gamma, beta, static_cast<T*>(y), g);
    CUDA_CHECK_LAUNCH(normalize_kernel);
  });
}

void backward_apply(DType dtype, const void* dy, const void* x, const float* gamma,
                    const float* save_mean, const float* save_var, const float* sums, void* dx,
                    const Planes& g, float eps, cudaStream_t stream) {
  if (g.channels == 0 || g.per_channel() == 0) return;
  dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto* kernel = g.channels_last ? backward_apply_nhwc_kernel<T> : backward_apply_kernel<T>;
    kernel<<<per_channel_grid(g), per_channel_block(g), 0, stream>>>(
        static_cast<const T*>(dy), static_cast<const T*>(x), gamma, save_mean, save_var, sums,
        static_cast<T*>(dx), g, eps);
    CUDA_CHECK_LAUNCH(backward_apply_kernel);
  });
}

}  // namespace ruche::ops::gpu::bn
