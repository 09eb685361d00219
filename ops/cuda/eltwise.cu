// Element-wise ops on CUDA: activations, heaviside, add/axpy/scale, dropout. One grid-stride
// kernel per op; every output may alias its input (in-place use).
#include <cstdint>

#include "engine/rng/philox.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/kernel_util.h"

namespace ruche::ops::gpu {
namespace {

// Calls f(i) for every i in [0, n).
template <typename F>
__global__ void for_each_kernel(std::int64_t n, F f) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    f(i);
  }
}

template <typename F>
void for_each(std::int64_t n, F f, cudaStream_t stream) {
  if (n == 0) return;
  for_each_kernel<<<blocks_for(n), kThreads, 0, stream>>>(n, f);
  CUDA_CHECK_LAUNCH(for_each_kernel);
}

// ---- activations ----
struct ReluForward {
  const float* x;
  float* y;
  __device__ void operator()(std::int64_t i) const { y[i] = x[i] > 0.0f ? x[i] : 0.0f; }
};
struct LeakyReluForward {
  const float* x;
  float* y;
  float alpha;
  __device__ void operator()(std::int64_t i) const {
    const float v = x[i];
    y[i] = v > 0.0f ? v : alpha * v;
  }
};
struct SigmoidForward {
  const float* x;
  float* y;
  __device__ void operator()(std::int64_t i) const { y[i] = 1.0f / (1.0f + expf(-x[i])); }
};
struct TanhForward {
  const float* x;
  float* y;
  __device__ void operator()(std::int64_t i) const { y[i] = tanhf(x[i]); }
};

// Backward from the output y (so the forward may have run in place).
struct ReluBackward {
  const float* y;
  const float* dy;
  float* dx;
  __device__ void operator()(std::int64_t i) const { dx[i] = y[i] > 0.0f ? dy[i] : 0.0f; }
};
struct LeakyReluBackward {
  const float* y;
  const float* dy;
  float* dx;
  float alpha;
  __device__ void operator()(std::int64_t i) const {
    dx[i] = y[i] > 0.0f ? dy[i] : alpha * dy[i];
  }
};
struct SigmoidBackward {
  const float* y;
  const float* dy;
  float* dx;
  __device__ void operator()(std::int64_t i) const {
    const float s = y[i];
    dx[i] = dy[i] * s * (1.0f - s);
  }
};
struct TanhBackward {
  const float* y;
  const float* dy;
  float* dx;
  __device__ void operator()(std::int64_t i) const {
    const float t = y[i];
    dx[i] = dy[i] * (1.0f - t * t);
  }
};

struct Heaviside {
  const float* x;
  float* y;
  float at_zero;
  __device__ void operator()(std::int64_t i) const {
    const float v = x[i];
    y[i] = v > 0.0f ? 1.0f : (v == 0.0f ? at_zero : 0.0f);
  }
};

// ---- arithmetic ----
struct Add {
  const float* a;
  const float* b;
  float* y;
  __device__ void operator()(std::int64_t i) const { y[i] = a[i] + b[i]; }
};
struct Axpy {
  const float* x;
  float* y;
  float alpha;
  __device__ void operator()(std::int64_t i) const { y[i] += alpha * x[i]; }
};
struct Scale {
  float* x;
  float alpha;
  __device__ void operator()(std::int64_t i) const { x[i] *= alpha; }
};

// ---- dropout ----
// Thread t draws Philox block t once and uses its four words for elements 4t .. 4t+3: the very
// numbers rng_uniform(stream, i) gives the CPU for each i, so the masks are bit-identical.
__global__ void dropout_forward_kernel(std::int64_t n, const float* x, float* y,
                                       std::uint8_t* mask, float p, float keep_scale,
                                       RngStream stream) {
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
      y[i] = keep ? x[i] * keep_scale : 0.0f;
    }
  }
}

struct DropoutBackward {
  const float* dy;
  const std::uint8_t* mask;
  float* dx;
  float keep_scale;
  __device__ void operator()(std::int64_t i) const {
    dx[i] = mask[i] ? dy[i] * keep_scale : 0.0f;
  }
};

// 1 / (1 - p): the scale of kept values; 0 when p == 1 (nothing is kept).
float keep_scale_of(float p, const char* op) {
  RUCHE_REQUIRE(p >= 0.0f && p <= 1.0f) << op << ": drop probability p = " << p
                                        << " outside [0, 1]";
  return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
}

}  // namespace

void activation_forward(Activation kind, float alpha, const Tensor& x, Tensor& y) {
  constexpr const char* op = "activation_forward";
  check_arg(x, op, "x");
  check_arg(y, op, "y");
  check_shape_as(y, x, op, "y", "x");
  use_device_of(x);
  const std::int64_t n = x.numel();
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const cudaStream_t s = current_stream();
  switch (kind) {
    case Activation::relu: for_each(n, ReluForward{px, py}, s); return;
    case Activation::leaky_relu: for_each(n, LeakyReluForward{px, py, alpha}, s); return;
    case Activation::sigmoid: for_each(n, SigmoidForward{px, py}, s); return;
    case Activation::tanh: for_each(n, TanhForward{px, py}, s); return;
  }
  RUCHE_FAIL() << op << ": unknown activation " << static_cast<int>(kind);
}

void activation_backward(Activation kind, float alpha, const Tensor& y, const Tensor& dy,
                         Tensor& dx) {
  constexpr const char* op = "activation_backward";
  check_arg(y, op, "y");
  check_arg(dy, op, "dy");
  check_arg(dx, op, "dx");
  check_shape_as(dy, y, op, "dy", "y");
  check_shape_as(dx, y, op, "dx", "y");
  use_device_of(y);
  const std::int64_t n = y.numel();
  const float* py = y.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  const cudaStream_t s = current_stream();
  switch (kind) {
    case Activation::relu: for_each(n, ReluBackward{py, pdy, pdx}, s); return;
    case Activation::leaky_relu: for_each(n, LeakyReluBackward{py, pdy, pdx, alpha}, s); return;
    case Activation::sigmoid: for_each(n, SigmoidBackward{py, pdy, pdx}, s); return;
    case Activation::tanh: for_each(n, TanhBackward{py, pdy, pdx}, s); return;
  }
  RUCHE_FAIL() << op << ": unknown activation " << static_cast<int>(kind);
}

void heaviside_forward(const Tensor& x, Tensor& y, float value_at_zero) {
  constexpr const char* op = "heaviside_forward";
  check_arg(x, op, "x");
  check_arg(y, op, "y");
  check_shape_as(y, x, op, "y", "x");
  use_device_of(x);
  for_each(x.numel(), Heaviside{x.data<float>(), y.data<float>(), value_at_zero},
           current_stream());
}

void add(const Tensor& a, const Tensor& b, Tensor& y) {
  constexpr const char* op = "add";
  check_arg(a, op, "a");
  check_arg(b, op, "b");
  check_arg(y, op, "y");
  check_shape_as(b, a, op, "b", "a");
  check_shape_as(y, a, op, "y", "a");
  use_device_of(a);
  for_each(a.numel(), Add{a.data<float>(), b.data<float>(), y.data<float>()}, current_stream());
}

void axpy(float alpha, const Tensor& x, Tensor& y) {
  constexpr const char* op = "axpy";
  check_arg(x, op, "x");
  check_arg(y, op, "y");
  check_shape_as(y, x, op, "y", "x");
  use_device_of(x);
  for_each(x.numel(), Axpy{x.data<float>(), y.data<float>(), alpha}, current_stream());
}

void scale(float alpha, Tensor& x) {
  check_arg(x, "scale", "x");
  use_device_of(x);
  for_each(x.numel(), Scale{x.data<float>(), alpha}, current_stream());
}

void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, float p, const RngStream& stream) {
  constexpr const char* op = "dropout_forward";
  check_arg(x, op, "x");
  check_arg(y, op, "y");
  check_arg(mask, op, "mask", DType::u8);
  check_shape_as(y, x, op, "y", "x");
  check_shape_as(mask, x, op, "mask", "x");
  const float keep_scale = keep_scale_of(p, op);
  const std::int64_t n = x.numel();
  // Philox blocks are numbered with 32 bits: 2^34 positions per stream.
  RUCHE_REQUIRE(n <= (std::int64_t{1} << 34))
      << op << ": " << n << " elements exceed one random stream (2^34)";
  if (n == 0) return;
  use_device_of(x);
  const std::int64_t blocks = (n + 3) / 4;
  dropout_forward_kernel<<<blocks_for(blocks), kThreads, 0, current_stream()>>>(
      n, x.data<float>(), y.data<float>(), mask.data<std::uint8_t>(), p, keep_scale, stream);
  CUDA_CHECK_LAUNCH(dropout_forward_kernel);
}

void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, float p) {
  constexpr const char* op = "dropout_backward";
  check_arg(dy, op, "dy");
  check_arg(mask, op, "mask", DType::u8);
  check_arg(dx, op, "dx");
  check_shape_as(mask, dy, op, "mask", "dy");
  check_shape_as(dx, dy, op, "dx", "dy");
  const float keep_scale = keep_scale_of(p, op);
  use_device_of(dy);
  for_each(dy.numel(),
           DropoutBackward{dy.data<float>(), mask.data<std::uint8_t>(), dx.data<float>(),
                           keep_scale},
           current_stream());
}

}  // namespace ruche::ops::gpu
