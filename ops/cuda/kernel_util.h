// What the .cu units of ops/cuda share: argument checks, launch geometry, the stream ops run on,
// block reductions. Internal to ops/cuda (includes CUDA headers).
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "engine/tensor/tensor.h"
#include "ops/cuda/cuda_check.h"

namespace ruche::ops::gpu {

// The stream ops launch on. Every op takes its stream from here, and every launcher takes the
// stream as an argument, so per-rank compute streams replace this one function later.
inline cudaStream_t current_stream() { return nullptr; }  // the default stream

constexpr int kThreads = 256;                 // threads per block of the element-wise kernels
constexpr std::int64_t kMaxBlocks = 1 << 16;  // grid-stride loops cover the rest

// Blocks for n work items of kThreads each, capped (kernels loop over the remainder).
inline unsigned blocks_for(std::int64_t n) {
  return static_cast<unsigned>(
      std::clamp<std::int64_t>((n + kThreads - 1) / kThreads, 1, kMaxBlocks));
}

// `t` must be defined, contiguous, of `dtype`, on a CUDA device; throws ruche::Error naming the op
// and the argument otherwise.
inline void check_arg(const Tensor& t, std::string_view op, std::string_view name,
                      DType dtype = DType::f32) {
  RUCHE_REQUIRE(t.defined()) << op << ": " << name << " is undefined";
  RUCHE_REQUIRE(t.device().is_cuda())
      << op << ": " << name << " must be on a CUDA device, got " << t.str();
  RUCHE_REQUIRE(t.dtype() == dtype)
      << op << ": " << name << " must be " << dtype_name(dtype) << ", got " << t.str();
  RUCHE_REQUIRE(t.is_contiguous()) << op << ": " << name << " must be contiguous, got " << t.str()
                                   << " with strides " << t.strides().str();
}

// Whether t is channels-last (Layout::nhwc) rather than plain; CUDA ops take no other layout
// (oneDNN's blocked ones are the CPU's), and say so naming the op and the argument.
inline bool is_channels_last(const Tensor& t, std::string_view op, std::string_view name) {
  RUCHE_CHECK(t.is_plain() || t.layout() == Layout::nhwc)
      << op << ": " << name << " is " << t.str() << ", a CPU layout; CUDA takes plain or nhwc";
  return t.layout() == Layout::nhwc;
}

// `t` must have the shape of `ref`.
inline void check_shape_as(const Tensor& t, const Tensor& ref, std::string_view op,
                           std::string_view name, std::string_view ref_name) {
  RUCHE_REQUIRE(t.shape() == ref.shape()) << op << ": " << name << " has shape " << t.shape().str()
                                          << " but " << ref_name << " has " << ref.shape().str();
}

// Makes the tensor's device current for the launches that follow.
inline void use_device_of(const Tensor& t) { CUDA_CHECK(cudaSetDevice(t.device().index)); }

// The dtype every tensor of one call shares: the first argument's, which must be f32, bf16 or
// f16. The others are checked against it with check_arg, so a mix is an error naming the op.
inline DType call_dtype(const Tensor& first, const char* op, const char* name) {
  RUCHE_REQUIRE(first.defined()) << op << ": " << name << " is undefined";
  const DType dtype = first.dtype();
  RUCHE_REQUIRE(dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16)
      << op << ": " << name << " must be f32, bf16 or f16, got " << first.str();
  return dtype;
}

// A tensor's elements as T (the dtype was checked by the caller).
template <typename T>
const T* cdata(const Tensor& t) {
  return static_cast<const T*>(t.raw_data());
}
template <typename T>
T* mdata(Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

#if defined(__CUDACC__)
// The sum of `v` over the block, valid in thread 0 (blockDim.x a multiple of 32, at most 1024).
// `shared` holds 32 values of T. Deterministic: a fixed tree for a fixed block size.
template <typename T, typename Op>
__device__ T block_reduce(T v, T* shared, Op op) {
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int offset = 16; offset > 0; offset /= 2)
    v = op(v, __shfl_down_sync(0xffffffffu, v, offset));
  __syncthreads();  // `shared` may still be read by a previous reduction
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const unsigned warps = blockDim.x / 32;
  if (warp == 0) {
    v = lane < warps ? shared[lane] : shared[0];
    // Lanes past `warps` repeat shared[0]; mask them out of the tree below by op's identity use.
    for (int offset = 16; offset > 0; offset /= 2) {
      const T other = __shfl_down_sync(0xffffffffu, v, offset);
      if (lane + offset < warps) v = op(v, other);
    }
  }
  return v;
}

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct MaxOp {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a > b ? a : b;
  }
};
#endif

}  // namespace ruche::ops::gpu
