// Losses on CUDA: mean squared error. The sum is deterministic: fixed per-block partial sums in
// double, then one block adds the partials in a fixed order.
#include <algorithm>
#include <cstdint>

#include "engine/tensor/allocator.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/kernel_util.h"

namespace ruche::ops::gpu {
namespace {

constexpr unsigned kPartials = 1024;  // at most this many blocks in the first pass

__global__ void squared_error_partials(std::int64_t n, const float* a, const float* b,
                                       double* partials) {
  __shared__ double shared[32];
  double sum = 0.0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const double d = static_cast<double>(a[i]) - b[i];
    sum += d * d;
  }
  sum = block_reduce(sum, shared, SumOp{});
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

__global__ void mean_of_partials(unsigned count, const double* partials, std::int64_t n,
                                 float* out) {
  __shared__ double shared[32];
  double sum = 0.0;
  for (unsigned i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  sum = block_reduce(sum, shared, SumOp{});
  if (threadIdx.x == 0) *out = static_cast<float>(sum / static_cast<double>(n));
}

// dpred = dloss * 2 (pred - target) / n
__global__ void mse_backward_kernel(std::int64_t n, const float* pred, const float* target,
                                    float* dpred, float factor) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dpred[i] = factor * (pred[i] - target[i]);
  }
}

// Device scratch from the caching allocator, returned on scope exit (ordered on the stream).
class Scratch {
 public:
  Scratch(Device device, std::size_t bytes)
      : allocator_(allocator_for(device)), bytes_(bytes), ptr_(allocator_.allocate(bytes)) {}
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { allocator_.deallocate(ptr_, bytes_); }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  Allocator& allocator_;
  std::size_t bytes_;
  void* ptr_;
};

}  // namespace

void mse_forward(const Tensor& pred, const Tensor& target, Tensor& loss) {
  constexpr const char* op = "mse_forward";
  check_arg(pred, op, "pred");
  check_arg(target, op, "target");
  check_arg(loss, op, "loss");
  check_shape_as(target, pred, op, "target", "pred");
  RUCHE_REQUIRE(loss.numel() == 1) << op << ": loss must have one element, got " << loss.str();
  use_device_of(pred);
  const std::int64_t n = pred.numel();
  const unsigned blocks = std::min<unsigned>(blocks_for(n), kPartials);
  Scratch partials(pred.device(), blocks * sizeof(double));
  const cudaStream_t s = current_stream();
  squared_error_partials<<<blocks, kThreads, 0, s>>>(n, pred.data<float>(), target.data<float>(),
                                                      partials.as<double>());
  CUDA_CHECK_LAUNCH(squared_error_partials);
  // n == 0 gives 0 / 0 = NaN, as torch's mean of nothing.
  mean_of_partials<<<1, kThreads, 0, s>>>(blocks, partials.as<double>(), n, loss.data<float>());
  CUDA_CHECK_LAUNCH(mean_of_partials);
}

void mse_backward(const Tensor& pred, const Tensor& target, Tensor& dpred, float dloss) {
  constexpr const char* op = "mse_backward";
  check_arg(pred, op, "pred");
  check_arg(target, op, "target");
  check_arg(dpred, op, "dpred");
  check_shape_as(target, pred, op, "target", "pred");
  check_shape_as(dpred, pred, op, "dpred", "pred");
  const std::int64_t n = pred.numel();
  if (n == 0) return;
  use_device_of(pred);
  const float factor = static_cast<float>(2.0 * static_cast<double>(dloss) / static_cast<double>(n));
  mse_backward_kernel<<<blocks_for(n), kThreads, 0, current_stream()>>>(
      n, pred.data<float>(), target.data<float>(), dpred.data<float>(), factor);
  CUDA_CHECK_LAUNCH(mse_backward_kernel);
}

}  // namespace ruche::ops::gpu
