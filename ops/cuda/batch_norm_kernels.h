// The kernels of batch norm on CUDA (batch_norm.cu), called by batch_norm.cc: the conversions
// between cuDNN's saved statistics and ours, and the synchronized batch norm's pieces. Pointers
// are device pointers; x, dy and dx are f32, bf16 or f16 (`dtype`), in the layout `g` describes
// (plain or channels-last); everything per channel is f32. Internal to ops/cuda.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/tensor/dtype.h"
#include "ops/cuda/channel_reduction.h"

namespace ruche::ops::gpu::bn {

// x as [N, C, plane] (plane H * W, or 1), plain or channels-last.
using Planes = ChannelData;

// out[0, n) = value.
void fill(std::int64_t n, float value, float* out, cudaStream_t stream);

// After cuDNN's training forward: save_var = 1 / invstd^2 - eps (the biased batch variance), and
// the running statistics updated as the CPU op does (the variance unbiased by count / (count - 1)).
void finish_training_stats(std::int64_t c, std::int64_t count, const float* save_mean,
                           const float* save_invstd, float* save_var, float* running_mean,
                           float* running_var, float eps, float momentum, cudaStream_t stream);

// invstd = 1 / sqrt(save_var + eps), what cuDNN's backward takes.
void inverse_std(std::int64_t c, const float* save_var, float eps, float* invstd,
                 cudaStream_t stream);

// stats [2C + 1]: per channel sum(x), sum(x^2), then the count; sums in double, in a fixed order
// on a channels x chunks grid (channel_reduction.cuh).
void local_stats(DType dtype, const void* x, const Planes& g, float* stats, cudaStream_t stream);

// save_mean, save_var and the running statistics from summed stats (the count on the device).
void stats_to_moments(std::int64_t c, const float* stats, float* running_mean, float* running_var,
                      float* save_mean, float* save_var, float momentum, cudaStream_t stream);

// sums [2C + 1]: per channel sum(dy), sum(dy * x_hat), then the count; dgamma / dbeta (nullable)
// get this x's sums too.
void backward_reduce(DType dtype, const void* dy, const void* x, const Planes& g,
                     const float* save_mean, const float* save_var, float eps, float* sums,
                     float* dgamma, float* dbeta, cudaStream_t stream);

// y = gamma * (x - mean) / sqrt(var + eps) + beta; gamma, beta nullable (1, 0). The forward of
// the data types cuDNN's legacy batch norm does not take (bf16).
void normalize(DType dtype, const void* x, const Planes& g, const float* mean, const float* var,
               float eps, const float* gamma, const float* beta, void* y, cudaStream_t stream);

// dx = gamma * invstd * (dy - sum(dy) / n - x_hat * sum(dy * x_hat) / n); gamma nullable (1).
void backward_apply(DType dtype, const void* dy, const void* x, const float* gamma,
                    const float* save_mean, const float* save_var, const float* sums, void* dx,
                    const Planes& g, float eps, cudaStream_t stream);

}  // namespace ruche::ops::gpu::bn
