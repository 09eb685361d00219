// The [outer, C, inner] ops on CUDA (ops/cpu/axis_ops.cc is the specification): softmax over an
// axis (one thread per (outer, inner) position, three passes over C), a block copied along an
// axis, a per-channel scale and shift (parameter sums in double, reduce_channels' fixed order),
// and the element-wise power. f32, bf16 or f16, one dtype per call; float compute otherwise.
#include <cstdint>

#include "ops/cuda/channel_reduction.cuh"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/float_types.cuh"
#include "ops/cuda/for_each.cuh"
#include "ops/cuda/kernel_util.h"
#include "ops/axis_split.h"
#include "ops/op_checks.h"

namespace ruche::ops::gpu {
namespace {

using ops::AxisSplit;
using ops::split_at;

template <typename F>
void launch_each(std::int64_t n, F f) {
  for_each(n, f, current_stream());
}

template <typename T>
struct SoftmaxAxisForward {
  const T* x;
  T* y;
  std::int64_t c, inner;
  __device__ void operator()(std::int64_t r) const {
    const std::int64_t base = (r / inner) * c * inner + r % inner;
    float m = -INFINITY;
    for (std::int64_t k = 0; k < c; ++k) m = fmaxf(m, to_float(x[base + k * inner]));
    float sum = 0.0f;
    for (std::int64_t k = 0; k < c; ++k) sum += expf(to_float(x[base + k * inner]) - m);
    const float inv = 1.0f / sum;
    for (std::int64_t k = 0; k < c; ++k) {
      y[base + k * inner] = from_float<T>(expf(to_float(x[base + k * inner]) - m) * inv);
    }
  }
};

template <typename T>
struct SoftmaxAxisBackward {
  const T* y;
  const T* dy;
  T* dx;
  std::int64_t c, inner;
  __device__ void operator()(std::int64_t r) const {
    const std::int64_t base = (r / inner) * c * inner + r % inner;
    float dot = 0.0f;
    for (std::int64_t k = 0; k < c; ++k) {
      dot += to_float(y[base + k * inner]) * to_float(dy[base + k * inner]);
    }
    for (std::int64_t k = 0; k < c; ++k) {
      const std::int64_t i = base + k * inner;
      dx[i] = from_float<T>(to_float(y[i]) * (to_float(dy[i]) - dot));
    }
  }
};

// dst[r * dst_stride + i] = src[r * src_stride + i] for i < row.
template <typename T>
struct CopyRows {
  const T* src;
  T* dst;
  std::int64_t src_stride, dst_stride, row;
  __device__ void operator()(std::int64_t e) const {
    const std::int64_t r = e / row, i = e % row;
    dst[r * dst_stride + i] = src[r * src_stride + i];
  }
};

template <typename T>
struct ScaleForward {
  const T* x;
  const T* scale;
  const T* bias;
  T* y;
  std::int64_t s, inner;
  __device__ void operator()(std::int64_t i) const {
    const std::int64_t c = (i / inner) % s;
    y[i] = from_float<T>(to_float(x[i]) * to_float(scale[c]) + (bias ? to_float(bias[c]) : 0.0f));
  }
};

template <typename T>
struct ScaleBackwardData {
  const T* scale;
  const T* dy;
  T* dx;
  std::int64_t s, inner;
  __device__ void operator()(std::int64_t i) const {
    const std::int64_t c = (i / inner) % s;
    dx[i] = from_float<T>(to_float(dy[i]) * to_float(scale[c]));
  }
};

// Per channel c, sums over outer and inner of dy * x and of dy (reduce_channels' pass 1).
template <typename T>
struct AddScaleParamSums {
  const T* x;
  const T* dy;
  __device__ void operator()(std::int64_t at, std::int64_t /*c*/, double* sums) const {
    const double g = to_float(dy[at]);
    sums[0] += g * to_float(x[at]);
    sums[1] += g;
  }
};

template <typename T>
struct StoreScaleParamSums {
  T* dscale;  // nullable
  T* dbias;   // nullable
  __device__ void operator()(std::int64_t c, const double* totals) const {
    if (dscale) dscale[c] = from_double<T>(totals[0]);
    if (dbias) dbias[c] = from_double<T>(totals[1]);
  }
};

template <typename T>
struct PowerForward {
  const T* x;
  T* y;
  float power, scale, shift;
  __device__ void operator()(std::int64_t i) const {
    y[i] = from_float<T>(powf(shift + scale * to_float(x[i]), power));
  }
};

template <typename T>
struct PowerBackward {
  const T* x;
  const T* dy;
  T* dx;
  float power, scale, shift;
  __device__ void operator()(std::int64_t i) const {
    const float g = power == 0.0f ? 0.0f
                                  : to_float(dy[i]) * power * scale *
                                        powf(shift + scale * to_float(x[i]), power - 1.0f);
    dx[i] = from_float<T>(g);
  }
};

AxisSplit check_channel_scale(const char* op, const Tensor& x, const Tensor& scale, int axis) {
  RUCHE_REQUIRE(axis >= 0 && axis + scale.ndim() <= x.ndim())
      << op << ": a scale " << scale.shape().str() << " at axis " << axis << " does not fit "
      << x.shape().str();
  for (int d = 0; d < scale.ndim(); ++d) {
    RUCHE_REQUIRE(scale.size(d) == x.size(axis + d))
        << op << ": scale " << scale.shape().str() << " does not match dims " << axis << ".."
        << axis + scale.ndim() - 1 << " of " << x.shape().str();
  }
  return split_at(op, x, axis, scale.ndim());
}

template <typename T>
const T* cdata_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}
template <typename T>
T* mdata_or_null(Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

}  // namespace

void softmax_axis_forward(const Tensor& x, Tensor& y, int axis) {
  constexpr const char* op = "softmax_axis_forward";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(y, op, "y", dtype);
  check_shape_as(y, x, op, "y", "x");
  const AxisSplit s = split_at(op, x, axis);
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    launch_each(s.outer * s.inner,
                SoftmaxAxisForward<T>{cdata<T>(x), mdata<T>(y), s.channels, s.inner});
  });
}

void softmax_axis_backward(const Tensor& y, const Tensor& dy, Tensor& dx, int axis) {
  constexpr const char* op = "softmax_axis_backward";
  const DType dtype = call_dtype(y, op, "y");
  check_arg(y, op, "y", dtype);
  check_arg(dy, op, "dy", dtype);
  check_arg(dx, op, "dx", dtype);
  check_shape_as(dy, y, op, "dy", "y");
  check_shape_as(dx, y, op, "dx", "y");
  const AxisSplit s = split_at(op, y, axis);
  use_device_of(y);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    launch_each(s.outer * s.inner, SoftmaxAxisBackward<T>{cdata<T>(y), cdata<T>(dy), mdata<T>(dx),
                                                          s.channels, s.inner});
  });
}

void copy_into_axis(const Tensor& part, Tensor& whole, int axis, std::int64_t offset) {
  constexpr const char* op = "copy_into_axis";
  const DType dtype = call_dtype(part, op, "part");
  check_arg(part, op, "part", dtype);
  check_arg(whole, op, "whole", dtype);
  const AxisSplit s = check_axis_block(op, part, whole, axis, offset);
  const std::int64_t row = part.size(axis) * s.inner;
  use_device_of(part);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    launch_each(s.outer * row, CopyRows<T>{cdata<T>(part), mdata<T>(whole) + offset * s.inner, row,
                                           s.channels * s.inner, row});
  });
}

void copy_from_axis(const Tensor& whole, Tensor& part, int axis, std::int64_t offset) {
  constexpr const char* op = "copy_from_axis";
  const DType dtype = call_dtype(whole, op, "whole");
  check_arg(whole, op, "whole", dtype);
  check_arg(part, op, "part", dtype);
  const AxisSplit s = check_axis_block(op, part, whole, axis, offset);
  const std::int64_t row = part.size(axis) * s.inner;
  use_device_of(whole);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    launch_each(s.outer * row, CopyRows<T>{cdata<T>(whole) + offset * s.inner, mdata<T>(part),
                                           s.channels * s.inner, row, row});
  });
}

void channel_scale_forward(const Tensor& x, const Tensor& scale, const Tensor& bias, Tensor& y,
                           int axis) {
  constexpr const char* op = "channel_scale_forward";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(scale, op, "scale", dtype);
  check_arg(y, op, "y", dtype);
  check_shape_as(y, x, op, "y", "x");
  if (bias.defined()) {
    check_arg(bias, op, "bias", dtype);
    check_shape_as(bias, scale, op, "bias", "scale");
  }
  const AxisSplit s = check_channel_scale(op, x, scale, axis);
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    launch_each(x.numel(), ScaleForward<T>{cdata<T>(x), cdata<T>(scale), cdata_or_null<T>(bias),
                                           mdata<T>(y), s.channels, s.inner});
  });
}

void channel_scale_backward(const Tensor& x, const Tensor& scale, const Tensor& dy, Tensor& dx,
                            Tensor& dscale, Tensor& dbias, int axis) {
  constexpr const char* op = "channel_scale_backward";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(scale, op, "scale", dtype);
  check_arg(dy, op, "dy", dtype);
  check_shape_as(dy, x, op, "dy", "x");
  const AxisSplit s = check_channel_scale(op, x, scale, axis);
  if (dscale.defined()) {
    check_arg(dscale, op, "dscale", dtype);
    check_shape_as(dscale, scale, op, "dscale", "scale");
  }
  if (dbias.defined()) {
    check_arg(dbias, op, "dbias", dtype);
    check_shape_as(dbias, scale, op, "dbias", "scale");
  }
  if (dx.defined()) {
    check_arg(dx, op, "dx", dtype);
    check_shape_as(dx, x, op, "dx", "x");
  }
  RUCHE_REQUIRE(s.channels < (std::int64_t{1} << 31))
      << op << ": " << s.channels << " channels exceed one CUDA grid";
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    // The parameter sums first: dx may be dy.
    if ((dscale.defined() || dbias.defined()) && s.channels > 0) {
      reduce_channels<2>(ChannelData{s.outer, s.channels, s.inner, /*channels_last=*/false},
                         AddScaleParamSums<T>{cdata<T>(x), cdata<T>(dy)},
                         StoreScaleParamSums<T>{mdata_or_null<T>(dscale), mdata_or_null<T>(dbias)},
                         current_stream());
    }
    if (dx.defined()) {
      launch_each(x.numel(), ScaleBackwardData<T>{cdata<T>(scale), cdata<T>(dy), mdata<T>(dx),
                                                  s.channels, s.inner});
    }
  });
}

void power_forward(const Tensor& x, Tensor& y, const PowerParams& p) {
  constexpr const char* op = "power_forward";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(y, op, "y", dtype);
  check_shape_as(y, x, op, "y", "x");
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    launch_each(x.numel(), PowerForward<T>{cdata<T>(x), mdata<T>(y), p.power, p.scale, p.shift});
  });
}

void power_backward(const Tensor& x, const Tensor& dy, Tensor& dx, const PowerParams& p) {
  constexpr const char* op = "power_backward";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(dy, op, "dy", dtype);
  check_arg(dx, op, "dx", dtype);
  check_shape_as(dy, x, op, "dy", "x");
  check_shape_as(dx, x, op, "dx", "x");
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    launch_each(x.numel(), PowerBackward<T>{cdata<T>(x), cdata<T>(dy), mdata<T>(dx), p.power,
                                            p.scale, p.shift});
  });
}

}  // namespace ruche::ops::gpu
