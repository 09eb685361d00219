// Weight penalties on CUDA, as ops/cpu/penalty.cc: L1 = coeff * sum|w|, L2 = coeff / 2 * sum w^2.
// The sums run in double and are deterministic (fixed per-block partials, then one block adds
// them in a fixed order); backward adds into the gradient.
#include <algorithm>
#include <cstdint>

#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/handles.h"
#include "ops/cuda/kernel_util.h"

namespace ruche::ops::gpu {
namespace {

constexpr unsigned kPartials = 1024;  // at most this many blocks in the first pass

struct AbsValue {
  __device__ double operator()(float v) const { return fabs(static_cast<double>(v)); }
};
struct Square {
  __device__ double operator()(float v) const { return static_cast<double>(v) * v; }
};

template <typename F>
__global__ void penalty_partials_kernel(std::int64_t n, const float* w, F f, double* partials) {
  __shared__ double shared[32];
  double sum = 0.0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    sum += f(w[i]);
  }
  sum = block_reduce(sum, shared, SumOp{});
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// *loss = factor * (the partials' sum)
__global__ void penalty_total_kernel(unsigned count, const double* partials, double factor,
                                     float* loss) {
  __shared__ double shared[32];
  double sum = 0.0;
  for (unsigned i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  sum = block_reduce(sum, shared, SumOp{});
  if (threadIdx.x == 0) *loss = static_cast<float>(factor * sum);
}

// dw += coeff * sign(w), sign(0) = 0 (torch.sign, the subgradient PyTorch's abs uses).
__global__ void l1_backward_kernel(std::int64_t n, const float* w, float coeff, float* dw) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dw[i] += w[i] > 0.0f ? coeff : (w[i] < 0.0f ? -coeff : 0.0f);
  }
}

// dw += coeff * w
__global__ void l2_backward_kernel(std::int64_t n, const float* w, float coeff, float* dw) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dw[i] += coeff * w[i];
  }
}

template <typename F>
void penalty_forward(const char* op, const Tensor& w, F f, double factor, Tensor& loss) {
  check_arg(w, op, "w");
  check_arg(loss, op, "loss");
  RUCHE_REQUIRE(loss.numel() == 1)
      << op << ": loss must hold one element, got shape " << loss.shape().str();
  use_device_of(w);
  const std::int64_t n = w.numel();
  const unsigned blocks = std::min<unsigned>(blocks_for(n), kPartials);
  auto* partials = static_cast<double*>(workspace(blocks * sizeof(double)));
  const cudaStream_t s = current_stream();
  penalty_partials_kernel<<<blocks, kThreads, 0, s>>>(n, w.data<float>(), f, partials);
  CUDA_CHECK_LAUNCH(penalty_partials_kernel);
  penalty_total_kernel<<<1, kThreads, 0, s>>>(blocks, partials, factor, loss.data<float>());
  CUDA_CHECK_LAUNCH(penalty_total_kernel);
}

void check_backward_args(const char* op, const Tensor& w, const Tensor& dw) {
  check_arg(w, op, "w");
  check_arg(dw, op, "dw");
  check_shape_as(dw, w, op, "dw", "w");
}

}  // namespace

void l1_penalty_forward(const Tensor& w, float coeff, Tensor& loss) {
  penalty_forward("l1_penalty_forward", w, AbsValue{}, static_cast<double>(coeff), loss);
}

void l2_penalty_forward(const Tensor& w, float coeff, Tensor& loss) {
  // 0.5 * coeff * sum, in the CPU op's order.
  penalty_forward("l2_penalty_forward", w, Square{}, 0.5 * static_cast<double>(coeff), loss);
}

void l1_penalty_backward(const Tensor& w, float coeff, Tensor& dw) {
  check_backward_args("l1_penalty_backward", w, dw);
  const std::int64_t n = w.numel();
  if (n == 0) return;
  use_device_of(w);
  l1_backward_kernel<<<blocks_for(n), kThreads, 0, current_stream()>>>(n, w.data<float>(), coeff,
                                                                       dw.data<float>());
  CUDA_CHECK_LAUNCH(l1_backward_kernel);
}

void l2_penalty_backward(const Tensor& w, float coeff, Tensor& dw) {
  check_backward_args("l2_penalty_backward", w, dw);
  const std::int64_t n = w.numel();
  if (n == 0) return;
  use_device_of(w);
  l2_backward_kernel<<<blocks_for(n), kThreads, 0, current_stream()>>>(n, w.data<float>(), coeff,
                                                                       dw.data<float>());
  CUDA_CHECK_LAUNCH(l2_backward_kernel);
}

}  // namespace ruche::ops::gpu
