// Nearest and bilinear upsampling on CUDA with the CPU's semantics (ops/upsample_index.h: the
// same float source coordinates and weights). Forward: one thread per output element. Backward
// gathers: one thread per input element sums the outputs that read it (found by binary search,
// the source index being monotone in the output index), so no atomics are needed and reruns give
// the same bits. f32, bf16 or f16 data (one dtype per call), float compute, one rounding on store.
#include <cstdint>

#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/float_types.cuh"
#include "ops/cuda/kernel_util.h"
#include "ops/op_checks.h"
#include "ops/upsample_index.h"

namespace ruche::ops::gpu {
namespace {

struct Geometry {
  std::int64_t planes;
  UpsampleAxis h, w;
};

template <typename T>
__global__ void upsample_forward_kernel(const T* x, T* y, Geometry g) {
  const std::int64_t OH = g.h.out, OW = g.w.out, H = g.h.in, W = g.w.in;
  const std::int64_t total = g.planes * OH * OW;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total;
       o += stride) {
    const std::int64_t ow = o % OW, oh = (o / OW) % OH, plane = o / (OH * OW);
    const T* xp = x + plane * H * W;
    if (!g.h.bilinear) {
      y[o] = xp[nearest_source(g.h, oh) * W + nearest_source(g.w, ow)];
      continue;
    }
    const LinearTap th = linear_source(g.h, oh), tw = linear_source(g.w, ow);
    const T* r0 = xp + th.i0 * W;
    const T* r1 = xp + th.i1 * W;
    const float v = th.l0 * (tw.l0 * to_float(r0[tw.i0]) + tw.l1 * to_float(r0[tw.i1])) +
                    th.l1 * (tw.l0 * to_float(r1[tw.i0]) + tw.l1 * to_float(r1[tw.i1]));
    y[o] = from_float<T>(v);
  }
}

// Which source index of output o along an axis: 0 nearest, 1 the first bilinear tap, 2 the second.
template <int Kind>
__device__ inline std::int64_t source_of(const UpsampleAxis& a, std::int64_t o) {
  if (Kind == 0) return nearest_source(a, o);
  const LinearTap t = linear_source(a, o);
  return Kind == 1 ? t.i0 : t.i1;
}

template <int Kind>
__device__ inline float weight_of(const UpsampleAxis& a, std::int64_t o) {
  if (Kind == 0) return 1.0f;
  const LinearTap t = linear_source(a, o);
  return Kind == 1 ? t.l0 : t.l1;
}

// The first output whose source index (of Kind) is >= i; the index is non-decreasing in o.
template <int Kind>
__device__ inline std::int64_t first_reading(const UpsampleAxis& a, std::int64_t i) {
  std::int64_t lo = 0, hi = a.out;
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (source_of<Kind>(a, mid) < i) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// The sum over the outputs along the w axis of row `row` that read input column iw.
template <int Kind, typename T>
__device__ inline float column_sum(const T* row, const UpsampleAxis& a, std::int64_t iw) {
  float s = 0.0f;
  const std::int64_t end = first_reading<Kind>(a, iw + 1);
  for (std::int64_t ow = first_reading<Kind>(a, iw); ow < end; ++ow) {
    s += weight_of<Kind>(a, ow) * to_float(row[ow]);
  }
  return s;
}

template <int Kind, typename T>
__device__ inline float row_sum(const T* plane, const Geometry& g, std::int64_t ih,
                                std::int64_t iw) {
  float s = 0.0f;
  const std::int64_t end = first_reading<Kind>(g.h, ih + 1);
  for (std::int64_t oh = first_reading<Kind>(g.h, ih); oh < end; ++oh) {
    const T* row = plane + oh * g.w.out;
    const float cols = Kind == 0 ? column_sum<0>(row, g.w, iw)
                                 : column_sum<1>(row, g.w, iw) + column_sum<2>(row, g.w, iw);
    s += weight_of<Kind>(g.h, oh) * cols;
  }
  return s;
}

template <typename T>
__global__ void upsample_backward_kernel(const T* dy, T* dx, Geometry g) {
  const std::int64_t OH = g.h.out, OW = g.w.out, H = g.h.in, W = g.w.in;
  const std::int64_t total = g.planes * H * W;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const std::int64_t iw = i % W, ih = (i / W) % H, plane = i / (H * W);
    const T* gp = dy + plane * OH * OW;
    const float v = g.h.bilinear ? row_sum<1>(gp, g, ih, iw) + row_sum<2>(gp, g, ih, iw)
                                 : row_sum<0>(gp, g, ih, iw);
    dx[i] = from_float<T>(v);
  }
}

constexpr TensorCheck kCheck = [](const char* op, const char* name, const Tensor& t,
                                  const Tensor& x) { check_arg(t, op, name, x.dtype()); };

// x: the input side, y: the output side.
DType check_upsample(const char* op, const Tensor& x, const char* x_name, const Tensor& y,
                     const char* y_name, const UpsampleParams& p) {
  const DType dtype = call_dtype(x, op, x_name);
  check_upsample2d_args(op, x, x_name, y, y_name, p, kCheck);
  return dtype;
}

Geometry geometry(const Tensor& x, const Tensor& y, const UpsampleParams& p) {
  return {x.size(0) * x.size(1), upsample_axis(x.size(2), y.size(2), p.scale_h, p),
          upsample_axis(x.size(3), y.size(3), p.scale_w, p)};
}

}  // namespace

void upsample2d_forward(const Tensor& x, Tensor& y, const UpsampleParams& p) {
  const DType dtype = check_upsample("upsample2d_forward", x, "x", y, "y", p);
  if (y.numel() == 0) return;
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    upsample_forward_kernel<T><<<blocks_for(y.numel()), kThreads, 0, current_stream()>>>(
        cdata<T>(x), mdata<T>(y), geometry(x, y, p));
    CUDA_CHECK_LAUNCH(upsample_forward_kernel);
  });
}

void upsample2d_backward(const Tensor& dy, Tensor& dx, const UpsampleParams& p) {
  const DType dtype = check_upsample("upsample2d_backward", dx, "dx", dy, "dy", p);
  if (dx.numel() == 0) return;
  use_device_of(dx);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    upsample_backward_kernel<T><<<blocks_for(dx.numel()), kThreads, 0, current_stream()>>>(
        cdata<T>(dy), mdata<T>(dx), geometry(dx, dy, p));
    CUDA_CHECK_LAUNCH(upsample_backward_kernel);
  });
}

}  // namespace ruche::ops::gpu
