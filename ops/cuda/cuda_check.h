// CUDA_CHECK / CUBLAS_CHECK / CUDNN_CHECK: name the call, file and line of a failed CUDA call.
// Included only by ops/cuda (the one place, with comm/nccl, that sees CUDA headers).
#pragma once

#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "engine/error.h"

#define CUDA_CHECK(call)                                                                       \
  do {                                                                                         \
    const cudaError_t ruche_cuda_status_ = (call);                                             \
    if (ruche_cuda_status_ != cudaSuccess) {                                                   \
      ::ruche::detail::Thrower<::ruche::Error>("CUDA call failed: " #call, __FILE__, __LINE__) \
          << cudaGetErrorName(ruche_cuda_status_) << ": "                                      \
          << cudaGetErrorString(ruche_cuda_status_);                                           \
    }                                                                                          \
  } while (0)

// After a kernel launch: a bad launch configuration (or an earlier asynchronous fault) surfaces
// here, named by the kernel.
#define CUDA_CHECK_LAUNCH(kernel)                                                               \
  do {                                                                                          \
    const cudaError_t ruche_cuda_status_ = cudaGetLastError();                                  \
    if (ruche_cuda_status_ != cudaSuccess) {                                                    \
      ::ruche::detail::Thrower<::ruche::Error>("CUDA kernel launch failed: " #kernel, __FILE__, \
                                               __LINE__)                                        \
          << cudaGetErrorName(ruche_cuda_status_) << ": "                                       \
          << cudaGetErrorString(ruche_cuda_status_);                                            \
    }                                                                                           \
  } while (0)

#define CUBLAS_CHECK(call)                                                                       \
  do {                                                                                           \
    const cublasStatus_t ruche_cublas_status_ = (call);                                          \
    if (ruche_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                         \
      ::ruche::detail::Thrower<::ruche::Error>("cuBLAS call failed: " #call, __FILE__, __LINE__) \
          << "status " << static_cast<int>(ruche_cublas_status_);                                \
    }                                                                                            \
  } while (0)

#define CUDNN_CHECK(call)                                                                       \
  do {                                                                                          \
    const cudnnStatus_t ruche_cudnn_status_ = (call);                                           \
    if (ruche_cudnn_status_ != CUDNN_STATUS_SUCCESS) {                                          \
      ::ruche::detail::Thrower<::ruche::Error>("cuDNN call failed: " #call, __FILE__, __LINE__) \
          << cudnnGetErrorString(ruche_cudnn_status_);                                          \
    }                                                                                           \
  } while (0)
