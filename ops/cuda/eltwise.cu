// Element-wise ops on CUDA: activations, heaviside, add/axpy/scale/mul/max, dropout. One
// grid-stride kernel per op and element type T (float, __nv_bfloat16, __half; all tensors of a
// call share one): values are loaded as float, computed in float and rounded once on store (to
// nearest even), so f32 computes what it always did. Every output may alias its input (in-place
// use).
#include <cmath>
#include <cstdint>

#include "engine/rng/philox.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/float_types.cuh"
#include "ops/cuda/for_each.cuh"
#include "ops/cuda/kernel_util.h"
#include "ops/cuda/nchw_index.cuh"

namespace ruche::ops::gpu {
namespace {

// ---- activations ----
template <typename T>
struct ReluForward {
  const T* x;
  T* y;
  // NaN passes through (as torch.relu and the CPU op), so the NaN guard still sees it.
  __device__ void operator()(std::int64_t i) const {
    const float v = to_float(x[i]);
    y[i] = from_float<T>(v < 0.0f ? 0.0f : v);
  }
};
template <typename T>
struct LeakyReluForward {
  const T* x;
  T* y;
  float alpha;
  __device__ void operator()(std::int64_t i) const {
    const float v = to_float(x[i]);
    y[i] = from_float<T>(v < 0.0f ? alpha * v : v);
  }
};
template <typename T>
struct SigmoidForward {
  const T* x;
  T* y;
  __device__ void operator()(std::int64_t i) const {
    y[i] = from_float<T>(1.0f / (1.0f + expf(-to_float(x[i]))));
  }
};
template <typename T>
struct TanhForward {
  const T* x;
  T* y;
  __device__ void operator()(std::int64_t i) const { y[i] = from_float<T>(tanhf(to_float(x[i]))); }
};

// Backward from the output y (so the forward may have run in place).
template <typename T>
struct ReluBackward {
  const T* y;
  const T* dy;
  T* dx;
  __device__ void operator()(std::int64_t i) const {
    dx[i] = from_float<T>(to_float(y[i]) > 0.0f ? to_float(dy[i]) : 0.0f);
  }
};
template <typename T>
struct LeakyReluBackward {
  const T* y;
  const T* dy;
  T* dx;
  float alpha;
  __device__ void operator()(std::int64_t i) const {
    const float g = to_float(dy[i]);
    dx[i] = from_float<T>(to_float(y[i]) > 0.0f ? g : alpha * g);
  }
};
template <typename T>
struct SigmoidBackward {
  const T* y;
  const T* dy;
  T* dx;
  __device__ void operator()(std::int64_t i) const {
    const float s = to_float(y[i]);
    dx[i] = from_float<T>(to_float(dy[i]) * s * (1.0f - s));
  }
};
template <typename T>
struct TanhBackward {
  const T* y;
  const T* dy;
  T* dx;
  __device__ void operator()(std::int64_t i) const {
    const float t = to_float(y[i]);
    dx[i] = from_float<T>(to_float(dy[i]) * (1.0f - t * t));
  }
};

template <typename T>
struct Heaviside {
  const T* x;
  T* y;
  float at_zero;
  __device__ void operator()(std::int64_t i) const {
    const float v = to_float(x[i]);
    y[i] = from_float<T>(v > 0.0f ? 1.0f : (v == 0.0f ? at_zero : 0.0f));
  }
};

// ---- arithmetic ----
template <typename T>
struct Add {
  const T* a;
  const T* b;
  T* y;
  __device__ void operator()(std::int64_t i) const {
    y[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
  }
};
template <typename T>
struct Axpy {
  const T* x;
  T* y;
  float alpha;
  __device__ void operator()(std::int64_t i) const {
    y[i] = from_float<T>(to_float(y[i]) + alpha * to_float(x[i]));
  }
};
template <typename T>
struct Scale {
  T* x;
  float alpha;
  __device__ void operator()(std::int64_t i) const { x[i] = from_float<T>(to_float(x[i]) * alpha); }
};

template <typename T>
struct Mul {
  const T* a;
  const T* b;
  T* y;
  __device__ void operator()(std::int64_t i) const {
    y[i] = from_float<T>(to_float(a[i]) * to_float(b[i]));
  }
};
template <typename T>
struct MaxInto {
  const T* x;
  T* y;
  float* mask;
  float index;
  __device__ void operator()(std::int64_t i) const {
    if (to_float(x[i]) > to_float(y[i])) {
      y[i] = x[i];
      mask[i] = index;
    }
  }
};
template <typename T>
struct MaxBackward {
  const float* mask;
  const T* dy;
  T* dx;
  float index;
  __device__ void operator()(std::int64_t i) const {
    dx[i] = mask[i] == index ? dy[i] : from_float<T>(0.0f);
  }
};

// ---- dropout ----
// Thread t draws Philox block t once and uses its four words for elements 4t .. 4t+3: the very
// numbers rng_uniform(stream, i) gives the CPU for each i, so the masks are bit-identical (and
// the mask does not depend on T).
template <typename T>
__global__ void dropout_forward_kernel(std::int64_t n, const T* x, T* y, std::uint8_t* mask,
                                       float p, float keep_scale, RngStream stream) {
  const std::int64_t blocks = (n + 3) / 4;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t b = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       b < blocks; b += step) {
    const Philox4 r = rng_block(stream, static_cast<std::uint32_t>(b));
    for (int j = 0; j < 4; ++j) {
      const std::int64_t i = 4 * b + j;
      if (i >= n) break;
      const bool keep = bits_to_uniform(r.v[j]) >= p;
      mask[i] = keep ? 1 : 0;
      y[i] = from_float<T>(keep ? to_float(x[i]) * keep_scale : 0.0f);
    }
  }
}

// Channels-last x: the element at memory offset m draws as its plain index does, so the mask
// (laid out as x) and y hold at each element what a plain run holds there. Each thread draws a
// whole Philox block for one word: channel neighbours are H * W plain positions apart.
template <typename T>
__global__ void dropout_forward_nhwc_kernel(std::int64_t n, std::int64_t C, std::int64_t H,
                                            std::int64_t W, const T* x, T* y, std::uint8_t* mask,
                                            float p, float keep_scale, RngStream stream) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t m = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; m < n;
       m += step) {
    const std::int64_t i = plain_index(element_at<true>(m, C, H, W), C, H, W);
    const bool keep = rng_uniform(stream, static_cast<std::uint64_t>(i)) >= p;
    mask[m] = keep ? 1 : 0;
    y[m] = from_float<T>(keep ? to_float(x[m]) * keep_scale : 0.0f);
  }
}

template <typename T>
struct DropoutBackward {
  const T* dy;
  const std::uint8_t* mask;
  T* dx;
  float keep_scale;
  __device__ void operator()(std::int64_t i) const {
    dx[i] = from_float<T>(mask[i] ? to_float(dy[i]) * keep_scale : 0.0f);
  }
};

void check_alpha(const char* op, Activation kind, float alpha) {
  // Backward recovers sign(x) from sign(y); a negative slope would flip it.
  RUCHE_REQUIRE(kind != Activation::leaky_relu || (alpha >= 0.0f && std::isfinite(alpha)))
      << op << ": leaky_relu needs a negative slope >= 0, got " << alpha;
  RUCHE_REQUIRE(kind == Activation::relu || kind == Activation::leaky_relu ||
                kind == Activation::sigmoid || kind == Activation::tanh)
      << op << ": unknown activation " << static_cast<int>(kind);
}

// 1 / (1 - p): the scale of kept values (the CPU op's range and formula).
float keep_scale_of(float p, const char* op) {
  RUCHE_REQUIRE(p >= 0.0f && p < 1.0f) << op << ": drop probability must be in [0, 1), got " << p;
  return 1.0f / (1.0f - p);
}

}  // namespace

void activation_forward(Activation kind, float alpha, const Tensor& x, Tensor& y) {
  constexpr const char* op = "activation_forward";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(y, op, "y", dtype);
  check_shape_as(y, x, op, "y", "x");
  check_alpha(op, kind, alpha);
  use_device_of(x);
  const std::int64_t n = x.numel();
  const cudaStream_t s = current_stream();
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    const T* px = cdata<T>(x);
    T* py = mdata<T>(y);
    switch (kind) {
      case Activation::relu:
        return for_each(n, ReluForward<T>{px, py}, s);
      case Activation::leaky_relu:
        return for_each(n, LeakyReluForward<T>{px, py, alpha}, s);
      case Activation::sigmoid:
        return for_each(n, SigmoidForward<T>{px, py}, s);
      case Activation::tanh:
        return for_each(n, TanhForward<T>{px, py}, s);
    }
  });
}

void activation_backward(Activation kind, float alpha, const Tensor& y, const Tensor& dy,
                         Tensor& dx) {
  constexpr const char* op = "activation_backward";
  const DType dtype = call_dtype(y, op, "y");
  check_arg(y, op, "y", dtype);
  check_arg(dy, op, "dy", dtype);
  check_arg(dx, op, "dx", dtype);
  check_shape_as(dy, y, op, "dy", "y");
  check_shape_as(dx, y, op, "dx", "y");
  check_alpha(op, kind, alpha);
  use_device_of(y);
  const std::int64_t n = y.numel();
  const cudaStream_t s = current_stream();
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    const T* py = cdata<T>(y);
    const T* pdy = cdata<T>(dy);
    T* pdx = mdata<T>(dx);
    switch (kind) {
      case Activation::relu:
        return for_each(n, ReluBackward<T>{py, pdy, pdx}, s);
      case Activation::leaky_relu:
        return for_each(n, LeakyReluBackward<T>{py, pdy, pdx, alpha}, s);
      case Activation::sigmoid:
        return for_each(n, SigmoidBackward<T>{py, pdy, pdx}, s);
      case Activation::tanh:
        return for_each(n, TanhBackward<T>{py, pdy, pdx}, s);
    }
  });
}

void heaviside_forward(const Tensor& x, Tensor& y, float value_at_zero) {
  constexpr const char* op = "heaviside_forward";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(y, op, "y", dtype);
  check_shape_as(y, x, op, "y", "x");
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    for_each(x.numel(), Heaviside<T>{cdata<T>(x), mdata<T>(y), value_at_zero}, current_stream());
  });
}

namespace {
// y = F(a, b) element by element: add and mul.
template <template <typename> class F>
void binary(const char* op, const Tensor& a, const Tensor& b, Tensor& y) {
  const DType dtype = call_dtype(a, op, "a");
  check_arg(a, op, "a", dtype);
  check_arg(b, op, "b", dtype);
  check_arg(y, op, "y", dtype);
  check_shape_as(b, a, op, "b", "a");
  check_shape_as(y, a, op, "y", "a");
  use_device_of(a);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    for_each(a.numel(), F<T>{cdata<T>(a), cdata<T>(b), mdata<T>(y)}, current_stream());
  });
}
}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& y) { binary<Add>("add", a, b, y); }

void axpy(float alpha, const Tensor& x, Tensor& y) {
  constexpr const char* op = "axpy";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(y, op, "y", dtype);
  check_shape_as(y, x, op, "y", "x");
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    for_each(x.numel(), Axpy<T>{cdata<T>(x), mdata<T>(y), alpha}, current_stream());
  });
}

void scale(float alpha, Tensor& x) {
  constexpr const char* op = "scale";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    for_each(x.numel(), Scale<T>{mdata<T>(x), alpha}, current_stream());
  });
}

void mul(const Tensor& a, const Tensor& b, Tensor& y) { binary<Mul>("mul", a, b, y); }

void max_into(const Tensor& x, float index, Tensor& y, Tensor& mask) {
  constexpr const char* op = "max_into";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(y, op, "y", dtype);
  check_arg(mask, op, "mask", DType::f32);
  check_shape_as(y, x, op, "y", "x");
  check_shape_as(mask, x, op, "mask", "x");
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    for_each(x.numel(), MaxInto<T>{cdata<T>(x), mdata<T>(y), mask.data<float>(), index},
             current_stream());
  });
}

void max_backward(const Tensor& mask, float index, const Tensor& dy, Tensor& dx) {
  constexpr const char* op = "max_backward";
  const DType dtype = call_dtype(dy, op, "dy");
  check_arg(mask, op, "mask", DType::f32);
  check_arg(dy, op, "dy", dtype);
  check_arg(dx, op, "dx", dtype);
  check_shape_as(mask, dy, op, "mask", "dy");
  check_shape_as(dx, dy, op, "dx", "dy");
  use_device_of(dy);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    for_each(dy.numel(), MaxBackward<T>{mask.data<float>(), cdata<T>(dy), mdata<T>(dx), index},
             current_stream());
  });
}

// As on the CPU: x and y in one layout (plain or nhwc); the mask is tagged plain but lies as x
// does, each element's keep bit at that element's place.
void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, float p, const RngStream& stream) {
  constexpr const char* op = "dropout_forward";
  const DType dtype = call_dtype(x, op, "x");
  check_arg(x, op, "x", dtype);
  check_arg(y, op, "y", dtype);
  check_arg(mask, op, "mask", DType::u8);
  check_shape_as(y, x, op, "y", "x");
  check_shape_as(mask, x, op, "mask", "x");
  const bool channels_last = is_channels_last(x, op, "x");
  RUCHE_REQUIRE(is_channels_last(y, op, "y") == channels_last && mask.is_plain())
      << op << ": x " << x.str() << " and y " << y.str()
      << " must share a layout, and the mask (laid out as x) be tagged plain; mask is "
      << mask.str();
  const float keep_scale = keep_scale_of(p, op);
  const std::int64_t n = x.numel();
  // Philox blocks are numbered with 32 bits: 2^34 positions per stream.
  RUCHE_REQUIRE(n <= (std::int64_t{1} << 34))
      << op << ": " << n << " elements exceed one random stream (2^34)";
  if (n == 0) return;
  use_device_of(x);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    if (channels_last) {
      dropout_forward_nhwc_kernel<T><<<blocks_for(n), kThreads, 0, current_stream()>>>(
          n, x.size(1), x.size(2), x.size(3), cdata<T>(x), mdata<T>(y), mask.data<std::uint8_t>(),
          p, keep_scale, stream);
      CUDA_CHECK_LAUNCH(dropout_forward_nhwc_kernel);
      return;
    }
    const std::int64_t blocks = (n + 3) / 4;
    dropout_forward_kernel<T><<<blocks_for(blocks), kThreads, 0, current_stream()>>>(
        n, cdata<T>(x), mdata<T>(y), mask.data<std::uint8_t>(), p, keep_scale, stream);
    CUDA_CHECK_LAUNCH(dropout_forward_kernel);
  });
}

// Element-wise in memory order, whatever the layout: the mask lies as dy and dx do.
void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, float p) {
  constexpr const char* op = "dropout_backward";
  const DType dtype = call_dtype(dy, op, "dy");
  check_arg(dy, op, "dy", dtype);
  check_arg(mask, op, "mask", DType::u8);
  check_arg(dx, op, "dx", dtype);
  check_shape_as(mask, dy, op, "mask", "dy");
  check_shape_as(dx, dy, op, "dx", "dy");
  RUCHE_REQUIRE(is_channels_last(dy, op, "dy") == is_channels_last(dx, op, "dx") && mask.is_plain())
      << op << ": dy " << dy.str() << " and dx " << dx.str()
      << " must share a layout, and the mask (laid out as dy) be tagged plain; mask is "
      << mask.str();
  const float keep_scale = keep_scale_of(p, op);
  use_device_of(dy);
  visit_float_dtype(dtype, [&](auto type) {
    using T = decltype(type);
    for_each(dy.numel(),
             DropoutBackward<T>{cdata<T>(dy), mask.data<std::uint8_t>(), mdata<T>(dx), keep_scale},
             current_stream());
  });
}

}  // namespace ruche::ops::gpu
