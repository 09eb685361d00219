// The library handles and scratch memory the ops of one device share: a cuDNN handle and a
// cuBLAS handle per device, bound to the stream ops run on, and a workspace that grows to the
// largest request. Internal to ops/cuda.
#pragma once

#include <cublas_api.h>
#include <cudnn.h>

#include <cstddef>

namespace ruche::ops::gpu {

// The current device's handles (created on first use, never destroyed: the process's teardown
// order of static objects and the CUDA runtime is not ours to rely on).
cudnnHandle_t cudnn_handle();
cublasHandle_t cublas_handle();

// At least `bytes` of device memory on the current device, valid until the next workspace() call
// from this process for that device. Ops run in order on one stream, so the previous user's
// kernels are queued before the next user's and sharing one block is safe. nullptr for 0 bytes.
void* workspace(std::size_t bytes);

// Whether cuBLAS and cuDNN may use TF32 tensor cores for fp32 data (gpu_math().precision other
// than fp32).
bool tf32_allowed();

}  // namespace ruche::ops::gpu
