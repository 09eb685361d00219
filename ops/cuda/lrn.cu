// Local response normalisation on CUDA (ops/cpu/lrn.cc is the specification): one thread per
// element, each summing its window; x, y, dy, dx f32, bf16 or f16 (one dtype), scale f32.
#include <cstdint>

#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/float_types.cuh"
#include "ops/cuda/kernel_util.h"

namespace ruche::ops::gpu {
namespace {

struct Geometry {
  std::int64_t n, c, h, w;
  int size, pre;
  bool across;
};

__device__ inline std::int64_t lo_of(std::int64_t i, int pre) { return i - pre > 0 ? i - pre : 0; }
__device__ inline std::int64_t hi_of(std::int64_t i, int pre, int size, std::int64_t len) {
  return i - pre + size < len ? i - pre + size : len;
}
// The windows holding i: those of j in [i + pre - size + 1, i + pre].
__device__ inline std::int64_t holders_lo(std::int64_t i, int pre, int size) {
  return i + pre - size + 1 > 0 ? i + pre - size + 1 : 0;
}
__device__ inline std::int64_t holders_hi(std::int64_t i, int pre, std::int64_t len) {
  return i + pre + 1 < len ? i + pre + 1 : len;
}

template <typename T>
__global__ void lrn_forward_kernel(Geometry g, float a, float k, float beta, const T* x, T* y,
                                   float* scale) {
  const std::int64_t total = g.n * g.c * g.h * g.w, hw = g.h * g.w;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += stride) {
    const std::int64_t nc = e / hw, p = e % hw, ch = nc % g.c, n = nc / g.c;
    const std::int64_t h = p / g.w, w = p % g.w;
    float sum = 0.0f;
    if (g.across) {
      for (std::int64_t q = lo_of(ch, g.pre); q < hi_of(ch, g.pre, g.size, g.c); ++q) {
        const float v = to_float(x[(n * g.c + q) * hw + p]);
        sum += v * v;
      }
    } else {
      for (std::int64_t i = lo_of(h, g.pre); i < hi_of(h, g.pre, g.size, g.h); ++i) {
        for (std::int64_t j = lo_of(w, g.pre); j < hi_of(w, g.pre, g.size, g.w); ++j) {
          const float v = to_float(x[nc * hw + i * g.w + j]);
          sum += v * v;
        }
      }
    }
    const float s = k + a * sum;
    scale[e] = s;
    y[e] = from_float<T>(to_float(x[e]) * powf(s, -beta));
  }
}

template <typename T>
__global__ void lrn_backward_kernel(Geometry g, float coeff, float beta, const T* x, const T* y,
                                    const float* scale, const T* dy, T* dx) {
  const std::int64_t total = g.n * g.c * g.h * g.w, hw = g.h * g.w;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += stride) {
    const std::int64_t nc = e / hw, p = e % hw, ch = nc % g.c, n = nc / g.c;
    const std::int64_t h = p / g.w, w = p % g.w;
    float sum = 0.0f;
    if (g.across) {
      for (std::int64_t q = holders_lo(ch, g.pre, g.size); q < holders_hi(ch, g.pre, g.c); ++q) {
        const std::int64_t j = (n * g.c + q) * hw + p;
        sum += to_float(dy[j]) * to_float(y[j]) / scale[j];
      }
    } else {
      for (std::int64_t i = holders_lo(h, g.pre, g.size); i < holders_hi(h, g.pre, g.h); ++i) {
        for (std::int64_t q = holders_lo(w, g.pre, g.size); q < holders_hi(w, g.pre, g.w); ++q) {
          const std::int64_t j = nc * hw + i * g.w + q;
          sum += to_float(dy[j]) * to_float(y[j]) / scale[j];
        }
      }
    }
    dx[e] = from_float<T>(to_float(dy[e]) * powf(scale[e], -beta) - coeff * to_float(x[e]) * sum);
  }
}

Geometry geometry_of(const char* op, const Tensor& x, const LrnParams& p) {
  RUCHE_REQUIRE(x.ndim() == 4) << op << ": x must be [N, C, H, W], got " << x.str();
  RUCHE_REQUIRE(p.size >= 1) << op << ": size must be >= 1, got " << p.size;
  const bool across = p.region == LrnRegion::across_channels;
  return {x.size(0), x.size(1), x.size(2),
          x.size(3), p.size,    across ? p.size / 2 : (p.size - 1) / 2,
          across};
}

float count_of(const LrnParams& p) {
  return p.region == LrnRegion::across_channels ? static_cast<float>(p.size)
                                                : static_cast<float>(p.size) * p.size;
}

}  // namespace

void lrn_forward(const Tensor& x, Tensor& y, Tensor& scale, const LrnParams& p) {
  constexpr const char* op = "lrn_forward";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(y, op, "y", dtype);
  check_arg(scale, op, "scale");
  const Geometry g = geometry_of(op, x, p);
  check_shape_as(y, x, op, "y", "x");
  check_shape_as(scale, x, op, "scale", "x");
  if (x.numel() == 0) return;
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    lrn_forward_kernel<T><<<blocks_for(x.numel()), kThreads, 0, current_stream()>>>(
        g, p.alpha / count_of(p), p.k, p.beta, cdata<T>(x), mdata<T>(y), mdata<float>(scale));
    CUDA_CHECK_LAUNCH(lrn_forward_kernel);
  });
}

void lrn_backward(const Tensor& x, const Tensor& y, const Tensor& scale, const Tensor& dy,
                  Tensor& dx, const LrnParams& p) {
  constexpr const char* op = "lrn_backward";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(y, op, "y", dtype);
  check_arg(scale, op, "scale");
  check_arg(dy, op, "dy", dtype);
  check_arg(dx, op, "dx", dtype);
  const Geometry g = geometry_of(op, x, p);
  check_shape_as(y, x, op, "y", "x");
  check_shape_as(scale, x, op, "scale", "x");
  check_shape_as(dy, x, op, "dy", "x");
  check_shape_as(dx, x, op, "dx", "x");
  if (x.numel() == 0) return;
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    lrn_backward_kernel<T><<<blocks_for(x.numel()), kThreads, 0, current_stream()>>>(
        g, 2.0f * p.alpha * p.beta / count_of(p), p.beta, cdata<T>(x), cdata<T>(y),
        cdata<float>(scale), cdata<T>(dy), mdata<T>(dx));
    CUDA_CHECK_LAUNCH(lrn_backward_kernel);
  });
}

}  // namespace ruche::ops::gpu
