// RUCHE_HOST_DEVICE marks a function __host__ __device__ when nvcc compiles it and nothing
// otherwise, so one definition (Philox, the optimizer formula, the reduction plan) serves the CPU
// and the CUDA code without a CUDA header.
#pragma once

#if defined(__CUDACC__)
#define RUCHE_HOST_DEVICE __host__ __device__
#else
#define RUCHE_HOST_DEVICE
#endif
