// bf16 and f16 next to f32 in our kernels: a kernel loads any of them as float, computes in float
// (or double) and stores rounded to nearest even. Internal to the .cu units of ops/cuda.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/tensor/dtype.h"

namespace ruche::ops::gpu {

__device__ inline float to_float(float v) { return v; }
__device__ inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ inline float to_float(__half v) { return __half2float(v); }

template <typename T>
__device__ T from_float(float v);
template <>
__device__ inline float from_float<float>(float v) {
  return v;
}
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}
template <>
__device__ inline __half from_float<__half>(float v) {
  return __float2half(v);
}

// A double result (a sum kept in double) stored as T with one rounding to nearest even:
// double -> float -> bf16 / f16 would round twice, and a value just above a 16-bit tie would land
// on the tie and round to even.
template <typename T>
__device__ T from_double(double v);
template <>
__device__ inline float from_double<float>(double v) {
  return static_cast<float>(v);
}
template <>
__device__ inline __nv_bfloat16 from_double<__nv_bfloat16>(double v) {
  return __double2bfloat16(v);
}
template <>
__device__ inline __half from_double<__half>(double v) {
  return __double2half(v);
}

// Calls f(T{}) with T the element type of a floating dtype (f32, bf16, f16) and returns true;
// returns false for any other dtype.
template <typename F>
bool visit_float_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32:
      f(float{});
      return true;
    case DType::bf16:
      f(__nv_bfloat16{});
      return true;
    case DType::f16:
      f(__half{});
      return true;
    default:
      return false;
  }
}

}  // namespace ruche::ops::gpu
