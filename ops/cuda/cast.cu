// cast on CUDA: f32 <-> bf16 <-> f16, the same bits as the CPU's cast (engine/tensor/half.h):
// round to nearest even through the hardware conversions, with NaN written as the CPU writes it
// (its F16C path for f16); bf16 by the CPU's own integer formula. x and y may be in different
// layouts, plain and nhwc: a 16-bit nhwc convolution's weights are cast from and to the plain
// f32 masters in the one pass, and reorder is a cast to the same dtype.
#include <cuda_fp16.h>

#include <cstdint>

#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/kernel_util.h"
#include "ops/cuda/nchw_index.cuh"

namespace ruche::ops::gpu {
namespace {

struct F32 {
  using T = float;
  static __device__ float widen(float v) { return v; }
  static __device__ float narrow(float v) { return v; }
};

struct F16 {
  using T = std::uint16_t;
  static __device__ float widen(std::uint16_t h) {
    if ((h & 0x7C00u) == 0x7C00u && (h & 0x03FFu) != 0) {  // NaN: quieted, payload kept
      return __uint_as_float(((h & 0x8000u) << 16) | 0x7FC00000u | ((h & 0x03FFu) << 13));
    }
    return __half2float(__ushort_as_half(h));
  }
  static __device__ std::uint16_t narrow(float f) {
    const std::uint32_t x = __float_as_uint(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) {  // NaN: quiet, the top of the payload
      return static_cast<std::uint16_t>(((x >> 16) & 0x8000u) | 0x7E00u | ((x >> 13) & 0x03FFu));
    }
    return __half_as_ushort(__float2half_rn(f));
  }
};

struct BF16 {
  using T = std::uint16_t;
  static __device__ float widen(std::uint16_t h) {
    return __uint_as_float(static_cast<std::uint32_t>(h) << 16);
  }
  static __device__ std::uint16_t narrow(float f) {
    const std::uint32_t x = __float_as_uint(f);
    const std::uint32_t rounded = (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;  // ties to even
    const std::uint32_t quiet_nan = (x >> 16) | 0x40u;
    return static_cast<std::uint16_t>((x & 0x7FFFFFFFu) > 0x7F800000u ? quiet_nan : rounded);
  }
};

// Where y's element i comes from in x: the same place, or, between plain and nhwc, the same
// (n, c, h, w) in x's order. Writes run in y's order, so they coalesce; the reads gather.
struct SourceIndex {
  std::int64_t C = 1, H = 1, W = 1;
  enum { same, from_plain, from_nhwc } kind = same;

  __device__ std::int64_t operator()(std::int64_t i) const {
    if (kind == same) return i;
    if (kind == from_plain) return plain_index(element_at<true>(i, C, H, W), C, H, W);
    const Nchw e = element_at<false>(i, C, H, W);
    return plane_of<true>(e.n, e.c, C, H, W).at(e.h, e.w);
  }
};

SourceIndex source_index(const Tensor& x, const Tensor& y) {
  const bool x_nhwc = is_channels_last(x, "cast", "x"), y_nhwc = is_channels_last(y, "cast", "y");
  if (x_nhwc == y_nhwc) return {};
  return {x.size(1), x.size(2), x.size(3),
          y_nhwc ? SourceIndex::from_plain : SourceIndex::from_nhwc};
}

// Through f32: widening is exact, so bf16 <-> f16 rounds once.
template <typename From, typename To>
__global__ void cast_kernel(std::int64_t n, const typename From::T* x, typename To::T* y,
                            SourceIndex source) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    y[i] = To::narrow(From::widen(x[source(i)]));
  }
}

template <typename From, typename To>
void launch(const Tensor& x, Tensor& y, cudaStream_t stream) {
  const std::int64_t n = x.numel();
  cast_kernel<From, To><<<blocks_for(n), kThreads, 0, stream>>>(
      n, static_cast<const typename From::T*>(x.raw_data()),
      static_cast<typename To::T*>(y.raw_data()), source_index(x, y));
  CUDA_CHECK_LAUNCH(cast_kernel);
}

template <typename From>
void launch_from(const Tensor& x, Tensor& y, cudaStream_t stream) {
  switch (y.dtype()) {
    case DType::f32:
      return launch<From, F32>(x, y, stream);
    case DType::bf16:
      return launch<From, BF16>(x, y, stream);
    case DType::f16:
      return launch<From, F16>(x, y, stream);
    default:
      RUCHE_FAIL() << "cast: y must be f32, bf16 or f16, got " << y.str();
  }
}

void check_float(const Tensor& t, const char* name) {
  RUCHE_REQUIRE(t.defined()) << "cast: " << name << " is undefined";
  const DType d = t.dtype();
  RUCHE_REQUIRE(d == DType::f32 || d == DType::bf16 || d == DType::f16)
      << "cast: " << name << " must be f32, bf16 or f16, got " << t.str();
  check_arg(t, "cast", name, d);
}

}  // namespace

void cast(const Tensor& x, Tensor& y) {
  check_float(x, "x");
  check_float(y, "y");
  check_shape_as(y, x, "cast", "y", "x");
  const std::int64_t n = x.numel();
  if (n == 0) return;
  use_device_of(x);
  const cudaStream_t stream = current_stream();
  RUCHE_REQUIRE(x.layout() == y.layout() || x.raw_data() != y.raw_data())
      << "cast: " << x.str() << " -> " << y.str() << " in place changes the layout";
  if (x.dtype() == y.dtype() && x.layout() == y.layout()) {
    if (x.raw_data() != y.raw_data()) {
      CUDA_CHECK(cudaMemcpyAsync(y.raw_data(), x.raw_data(), x.nbytes(), cudaMemcpyDeviceToDevice,
                                 stream));
    }
    return;
  }
  switch (x.dtype()) {
    case DType::f32:
      return launch_from<F32>(x, y, stream);
    case DType::bf16:
      return launch_from<BF16>(x, y, stream);
    case DType::f16:
      return launch_from<F16>(x, y, stream);
    default:
      RUCHE_FAIL() << "cast: x must be f32, bf16 or f16, got " << x.str();
  }
}

}  // namespace ruche::ops::gpu
