// for_each(n, f, stream): f(i) for every i in [0, n), a grid-stride loop of kThreads-thread blocks;
// the launch of the element-wise kernels (eltwise.cu, axis_ops.cu). For .cu files only.
#pragma once

#include <cstdint>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/kernel_util.h"

namespace ruche::ops::gpu {

template <typename F>
__global__ void for_each_kernel(std::int64_t n, F f) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    f(i);
  }
}

template <typename F>
void for_each(std::int64_t n, F f, cudaStream_t stream) {
  if (n == 0) return;
  for_each_kernel<<<blocks_for(n), kThreads, 0, stream>>>(n, f);
  CUDA_CHECK_LAUNCH(for_each_kernel);
}

}  // namespace ruche::ops::gpu
