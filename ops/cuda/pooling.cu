// Max, average and global average pooling over NCHW planes on CUDA, with the semantics of
// ops/cpu/pooling.cc (window clipping, ceil_mode, count_include_pad, argmax indices h * W + w).
// Forward: one thread per output element. Backward gathers: one thread per input element sums,
// in the CPU's order, the outputs whose window holds it, so no atomics are needed and the
// result is bit-identical to the CPU's scatter. Global average: one block per plane.
// Data of one call are all f32, bf16 or f16 (T): loaded as float, summed in float (double for
// the global average, as on the CPU), rounded once on store; T = float is the f32 code as it was.
// Max and average pooling also take channels-last data (Layout::nhwc, all data of a call in one
// layout): threads then walk memory order, channel fastest, so neighbours read neighbouring
// channels; max pooling's indices stay h * W + w and lie as y does (as the CPU's blocked ones).
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/float_types.cuh"
#include "ops/cuda/kernel_util.h"
#include "ops/cuda/nchw_index.cuh"

namespace ruche::ops::gpu {
namespace {

// The geometry every pooling kernel needs.
struct PoolGeometry {
  std::int64_t N, C, H, W, OH, OW;
  int kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
};

PoolGeometry geometry(const Tensor& input, const Tensor& output, const Pool2dParams& p) {
  return {.N = input.size(0),
          .C = input.size(1),
          .H = input.size(2),
          .W = input.size(3),
          .OH = output.size(2),
          .OW = output.size(3),
          .kh = p.kernel_h,
          .kw = p.kernel_w,
          .sh = p.stride_h,
          .sw = p.stride_w,
          .ph = p.pad_h,
          .pw = p.pad_w,
          .count_include_pad = p.count_include_pad};
}

// The window of output (oh, ow), clipped to the input: rows [h0, h1), columns [w0, w1).
struct Window {
  std::int64_t h0, h1, w0, w1;
};

__device__ inline std::int64_t lesser(std::int64_t a, std::int64_t b) { return a < b ? a : b; }
__device__ inline std::int64_t greater(std::int64_t a, std::int64_t b) { return a > b ? a : b; }

__device__ inline Window window_at(std::int64_t oh, std::int64_t ow, const PoolGeometry& g) {
  const std::int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  return {greater(h0, 0), lesser(h0 + g.kh, g.H), greater(w0, 0), lesser(w0 + g.kw, g.W)};
}

// As the CPU's avg_divisor: padding cells count when asked, never the cells past the right
// padding that ceil_mode adds.
__device__ inline float avg_divisor(std::int64_t oh, std::int64_t ow, const PoolGeometry& g) {
  if (!g.count_include_pad) {
    const Window w = window_at(oh, ow, g);
    return static_cast<float>((w.h1 - w.h0) * (w.w1 - w.w0));
  }
  const std::int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  const std::int64_t h1 = lesser(h0 + g.kh, g.H + g.ph), w1 = lesser(w0 + g.kw, g.W + g.pw);
  return static_cast<float>((h1 - h0) * (w1 - w0));
}

// The outputs along one axis whose window covers input position i: [first, last], possibly
// empty. Output o covers [o * s - pad, o * s - pad + k).
struct Span {
  std::int64_t first, last;
};

__device__ inline Span covering(std::int64_t i, int k, int s, int pad, std::int64_t outputs) {
  const std::int64_t hi = i + pad;  // o * s <= hi and o * s > hi - k
  const std::int64_t first = hi - k < 0 ? 0 : (hi - k) / s + 1;
  const std::int64_t last = lesser(hi / s, outputs - 1);
  return {first, last};
}

// Compares the loaded floats, so bf16 / f16 pick the argmax f32 picks on the same values.
template <typename T, bool kChannelsLast>
__global__ void max_pool_forward_kernel(const T* x, T* y, std::int32_t* indices, PoolGeometry g) {
  const std::int64_t total = g.N * g.C * g.OH * g.OW;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total;
       o += stride) {
    const Nchw out = element_at<kChannelsLast>(o, g.C, g.OH, g.OW);
    const PlaneView xp = plane_of<kChannelsLast>(out.n, out.c, g.C, g.H, g.W);
    const Window win = window_at(out.h, out.w, g);
    std::int64_t best = win.h0 * g.W + win.w0;
    float best_value = -std::numeric_limits<float>::infinity();
    for (std::int64_t h = win.h0; h < win.h1; ++h) {
      for (std::int64_t w = win.w0; w < win.w1; ++w) {
        const float v = to_float(x[xp.at(h, w)]);
        // The first maximum wins; a NaN propagates (the CPU's and PyTorch's rule).
        if (v > best_value || isnan(v)) {
          best_value = v;
          best = h * g.W + w;
        }
      }
    }
    y[o] = from_float<T>(best_value);  // exact: best_value is a loaded T
    indices[o] = static_cast<std::int32_t>(best);
  }
}

// dx[i] = the sum of dy over the outputs that chose i, taken in increasing output order (the
// CPU's scatter order). An index that points outside the plane matches no input and is dropped.
template <typename T, bool kChannelsLast>
__global__ void max_pool_backward_kernel(const T* dy, const std::int32_t* indices, T* dx,
                                         PoolGeometry g) {
  const std::int64_t total = g.N * g.C * g.H * g.W;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const Nchw in = element_at<kChannelsLast>(i, g.C, g.H, g.W);
    const std::int64_t position = in.h * g.W + in.w;
    const Span rows = covering(in.h, g.kh, g.sh, g.ph, g.OH);
    const Span cols = covering(in.w, g.kw, g.sw, g.pw, g.OW);
    const PlaneView yp = plane_of<kChannelsLast>(in.n, in.c, g.C, g.OH, g.OW);
    float sum = 0.0f;
    for (std::int64_t oh = rows.first; oh <= rows.last; ++oh) {
      for (std::int64_t ow = cols.first; ow <= cols.last; ++ow) {
        const std::int64_t o = yp.at(oh, ow);
        if (indices[o] == position) sum += to_float(dy[o]);
      }
    }
    dx[i] = from_float<T>(sum);
  }
}

template <typename T, bool kChannelsLast>
__global__ void avg_pool_forward_kernel(const T* x, T* y, PoolGeometry g) {
  const std::int64_t total = g.N * g.C * g.OH * g.OW;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total;
       o += stride) {
    const Nchw out = element_at<kChannelsLast>(o, g.C, g.OH, g.OW);
    const PlaneView xp = plane_of<kChannelsLast>(out.n, out.c, g.C, g.H, g.W);
    const Window win = window_at(out.h, out.w, g);
    float sum = 0.0f;
    for (std::int64_t h = win.h0; h < win.h1; ++h) {
      for (std::int64_t w = win.w0; w < win.w1; ++w) sum += to_float(x[xp.at(h, w)]);
    }
    y[o] = from_float<T>(sum / avg_divisor(out.h, out.w, g));
  }
}

// dx[i] = the sum of dy[o] / divisor(o) over the windows o that hold i, in increasing o (the
// CPU's order). A clipped window holds i exactly when the unclipped one does, i being inside.
template <typename T, bool kChannelsLast>
__global__ void avg_pool_backward_kernel(const T* dy, T* dx, PoolGeometry g) {
  const std::int64_t total = g.N * g.C * g.H * g.W;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const Nchw in = element_at<kChannelsLast>(i, g.C, g.H, g.W);
    const Span rows = covering(in.h, g.kh, g.sh, g.ph, g.OH);
    const Span cols = covering(in.w, g.kw, g.sw, g.pw, g.OW);
    const PlaneView yp = plane_of<kChannelsLast>(in.n, in.c, g.C, g.OH, g.OW);
    float sum = 0.0f;
    for (std::int64_t oh = rows.first; oh <= rows.last; ++oh) {
      for (std::int64_t ow = cols.first; ow <= cols.last; ++ow) {
        sum += to_float(dy[yp.at(oh, ow)]) / avg_divisor(oh, ow, g);
      }
    }
    dx[i] = from_float<T>(sum);
  }
}

// Block b averages plane b: a double sum (large planes would drift in float, as on the CPU),
// each thread's strided part then the block's fixed tree.
template <typename T>
__global__ void global_avg_pool_forward_kernel(const T* x, T* y, std::int64_t plane_size) {
  __shared__ double shared[32];
  const T* xp = x + static_cast<std::int64_t>(blockIdx.x) * plane_size;
  double sum = 0;
  for (std::int64_t i = threadIdx.x; i < plane_size; i += blockDim.x) sum += to_float(xp[i]);
  sum = block_reduce(sum, shared, SumOp{});
  if (threadIdx.x == 0) y[blockIdx.x] = from_double<T>(sum / static_cast<double>(plane_size));
}

template <typename T>
__global__ void global_avg_pool_backward_kernel(const T* dy, T* dx, std::int64_t planes,
                                                std::int64_t plane_size) {
  const std::int64_t total = planes * plane_size;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    dx[i] = from_float<T>(to_float(dy[i / plane_size]) / static_cast<float>(plane_size));
  }
}

std::string describe(const Pool2dParams& p) {
  std::ostringstream s;
  s << "kernel " << p.kernel_h << "x" << p.kernel_w << " stride " << p.stride_h << "x" << p.stride_w
    << " padding " << p.pad_h << "x" << p.pad_w << (p.ceil_mode ? " ceil_mode" : "");
  return s.str();
}

// The one floating dtype of a call's data, taken from `ref` (f32, bf16 or f16); `t` must share it
// and pass check_arg. Indices are checked apart (i32).
DType data_dtype(const char* op, const char* ref_arg, const Tensor& ref) {
  RUCHE_REQUIRE(ref.defined()) << op << ": " << ref_arg << " is undefined";
  const DType dtype = ref.dtype();
  RUCHE_REQUIRE(dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16)
      << op << ": " << ref_arg << " must be f32, bf16 or f16, got " << ref.str();
  check_arg(ref, op, ref_arg, dtype);
  return dtype;
}

void check_same_dtype(const char* op, const char* arg, const Tensor& t, const char* ref_arg,
                      DType dtype) {
  RUCHE_REQUIRE(!t.defined() || t.dtype() == dtype)
      << op << ": " << arg << " is " << dtype_name(t.dtype()) << " but " << ref_arg << " is "
      << dtype_name(dtype) << " (one of f32, bf16 or f16 for all data of a call), got " << t.str();
  check_arg(t, op, arg, dtype);
}

// What a pooling call runs on: the data's dtype and layout.
struct PoolData {
  DType dtype;
  bool channels_last;
};

// As the CPU's check_pool: x (the input side, [N, C, H, W]) and y (the output side) are dense,
// of one floating dtype, in one layout (plain or nhwc), on a CUDA device and fit p.
PoolData check_pool(const char* op, const char* x_arg, const Tensor& x, const char* y_arg,
                    const Tensor& y, const Pool2dParams& p) {
  const DType dtype = data_dtype(op, x_arg, x);
  check_same_dtype(op, y_arg, y, x_arg, dtype);
  RUCHE_REQUIRE(x.ndim() == 4) << op << ": " << x_arg << " must be [N, C, H, W], got " << x.str();
  const Shape expected = pool2d_output_shape(x.shape(), p);
  RUCHE_REQUIRE(y.shape() == expected)
      << op << ": " << y_arg << " has shape " << y.shape().str() << " but " << x_arg << " "
      << x.shape().str() << " with " << describe(p) << " gives " << expected.str();
  const bool channels_last = is_channels_last(x, op, x_arg);
  RUCHE_CHECK(is_channels_last(y, op, y_arg) == channels_last)
      << op << ": " << x_arg << " " << x.str() << " and " << y_arg << " " << y.str()
      << " in different layouts";
  return {dtype, channels_last};
}

DType check_global(const char* op, const char* x_arg, const Tensor& x, const char* y_arg,
                   const Tensor& y) {
  const DType dtype = data_dtype(op, x_arg, x);
  check_same_dtype(op, y_arg, y, x_arg, dtype);
  RUCHE_REQUIRE(x.ndim() == 4) << op << ": " << x_arg << " must be [N, C, H, W], got " << x.str();
  const Shape expected{x.size(0), x.size(1), 1, 1};
  RUCHE_REQUIRE(y.shape() == expected)
      << op << ": " << y_arg << " has shape " << y.shape().str() << " but " << x_arg << " "
      << x.shape().str() << " gives " << expected.str();
  return dtype;
}

}  // namespace

// The indices' layout tag is not read: they lie as y does (the CPU's rule for its blocked layouts).
void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dParams& p) {
  constexpr const char* op = "max_pool2d_forward";
  const PoolData data = check_pool(op, "input", x, "output", y, p);
  check_arg(indices, op, "indices", DType::i32);
  check_shape_as(indices, y, op, "indices", "output");
  RUCHE_REQUIRE(x.size(2) * x.size(3) <= std::numeric_limits<std::int32_t>::max())
      << op << ": input plane " << x.size(2) << "x" << x.size(3) << " is too large for i32 indices";
  if (y.numel() == 0) return;
  use_device_of(x);
  visit_float_dtype(data.dtype, [&](auto type) {
    using T = decltype(type);
    visit_channels_last(data.channels_last, [&](auto layout) {
      constexpr bool kChannelsLast = decltype(layout)::value;
      max_pool_forward_kernel<T, kChannelsLast>
          <<<blocks_for(y.numel()), kThreads, 0, current_stream()>>>(
              cdata<T>(x), mdata<T>(y), indices.data<std::int32_t>(), geometry(x, y, p));
      CUDA_CHECK_LAUNCH(max_pool_forward_kernel);
    });
  });
}

// Unlike the CPU, an index outside the plane is not reported (that would need a device-to-host
// read after every call); it contributes to no input.
void max_pool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx,
                         const Pool2dParams& p) {
  constexpr const char* op = "max_pool2d_backward";
  const PoolData data = check_pool(op, "dx", dx, "dy", dy, p);
  check_arg(indices, op, "indices", DType::i32);
  check_shape_as(indices, dy, op, "indices", "dy");
  if (dx.numel() == 0) return;
  use_device_of(dx);
  visit_float_dtype(data.dtype, [&](auto type) {
    using T = decltype(type);
    visit_channels_last(data.channels_last, [&](auto layout) {
      constexpr bool kChannelsLast = decltype(layout)::value;
      max_pool_backward_kernel<T, kChannelsLast>
          <<<blocks_for(dx.numel()), kThreads, 0, current_stream()>>>(
              cdata<T>(dy), indices.data<std::int32_t>(), mdata<T>(dx), geometry(dx, dy, p));
      CUDA_CHECK_LAUNCH(max_pool_backward_kernel);
    });
  });
}

void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dParams& p) {
  const PoolData data = check_pool("avg_pool2d_forward", "input", x, "output", y, p);
  if (y.numel() == 0) return;
  use_device_of(x);
  visit_float_dtype(data.dtype, [&](auto type) {
    using T = decltype(type);
    visit_channels_last(data.channels_last, [&](auto layout) {
      constexpr bool kChannelsLast = decltype(layout)::value;
      avg_pool_forward_kernel<T, kChannelsLast>
          <<<blocks_for(y.numel()), kThreads, 0, current_stream()>>>(cdata<T>(x), mdata<T>(y),
                                                                     geometry(x, y, p));
      CUDA_CHECK_LAUNCH(avg_pool_forward_kernel);
    });
  });
}

void avg_pool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dParams& p) {
  const PoolData data = check_pool("avg_pool2d_backward", "dx", dx, "dy", dy, p);
  if (dx.numel() == 0) return;
  use_device_of(dx);
  visit_float_dtype(data.dtype, [&](auto type) {
    using T = decltype(type);
    visit_channels_last(data.channels_last, [&](auto layout) {
      constexpr bool kChannelsLast = decltype(layout)::value;
      avg_pool_backward_kernel<T, kChannelsLast>
          <<<blocks_for(dx.numel()), kThreads, 0, current_stream()>>>(cdata<T>(dy), mdata<T>(dx),
                                                                      geometry(dx, dy, p));
      CUDA_CHECK_LAUNCH(avg_pool_backward_kernel);
    });
  });
}

void global_avg_pool_forward(const Tensor& x, Tensor& y) {
  const DType dtype = check_global("global_avg_pool_forward", "input", x, "output", y);
  const std::int64_t planes = x.size(0) * x.size(1), plane_size = x.size(2) * x.size(3);
  if (planes == 0) return;
  RUCHE_REQUIRE(planes <= std::numeric_limits<std::int32_t>::max())
      << "global_avg_pool_forward: " << planes << " planes exceed one grid";
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    global_avg_pool_forward_kernel<T>
        <<<static_cast<unsigned>(planes), kThreads, 0, current_stream()>>>(cdata<T>(x), mdata<T>(y),
                                                                           plane_size);
    CUDA_CHECK_LAUNCH(global_avg_pool_forward_kernel);
  });
}

void global_avg_pool_backward(const Tensor& dy, Tensor& dx) {
  const DType dtype = check_global("global_avg_pool_backward", "dx", dx, "dy", dy);
  const std::int64_t planes = dx.size(0) * dx.size(1), plane_size = dx.size(2) * dx.size(3);
  if (dx.numel() == 0) return;
  use_device_of(dx);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    global_avg_pool_backward_kernel<T><<<blocks_for(dx.numel()), kThreads, 0, current_stream()>>>(
        cdata<T>(dy), mdata<T>(dx), planes, plane_size);
    CUDA_CHECK_LAUNCH(global_avg_pool_backward_kernel);
  });
}

}  // namespace ruche::ops::gpu
