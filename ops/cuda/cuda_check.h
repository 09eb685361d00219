// CUDA_CHECK / CUBLAS_CHECK / CUDNN_CHECK: name the call, file and line of a failed CUDA call.
#pragma once

#include <cuda_runtime_api.h>

#include "engine/error.h"

#define CUDA_CHECK(call)                                                                     \
  do {                                                                                       \
    const cudaError_t ruche_cuda_status_ = (call);                                           \
    if (ruche_cuda_status_ != cudaSuccess) {                                                 \
      ::ruche::detail::Thrower<::ruche::Error>("CUDA call failed: " #call, __FILE__, __LINE__) \
          << cudaGetErrorName(ruche_cuda_status_) << ": "                                    \
          << cudaGetErrorString(ruche_cuda_status_);                                         \
    }                                                                                        \
  } while (0)
