// Batch normalization on CUDA, per channel over N (and H, W), for [N, C] (as [N, C, 1, 1]) and
// [N, C, H, W]; x, y, dy, dx f32, or bf16 / f16 with f32 gamma, beta and statistics (cuDNN's
// "pseudo half" configurations, for the mixed-precision path). The same semantics as
// ops/cpu/batch_norm.cc, which is the specification:
//   - training forward, inference and backward run cuDNN's spatial batch norm. cuDNN saves the
//     batch mean and the inverse standard deviation 1 / sqrt(var + eps); we save the biased
//     variance, so a small kernel converts (and converts back before cuDNN's backward). cuDNN's
//     own running statistics are not used: its docs do not pin down the variance it averages, so
//     cuDNN writes them to scratch and the same kernel updates ours exactly as the CPU op does
//     (momentum as torch, the variance unbiased by n / (n - 1)).
//   - the synchronized batch norm's four pieces are our own deterministic kernels
//     (batch_norm.cu).
//   - bf16 data runs on those kernels for the plain ops too (statistics, normalize, backward
//     reduce and apply): cuDNN's legacy batch-norm API is not documented to take bf16, and
//     PyTorch never sends it bf16.
// x, y, dy and dx are plain or channels-last (Layout::nhwc), all of one call in x's layout: cuDNN
// gets an NHWC descriptor, our kernels the layout in bn::Planes.
// gamma and beta may be undefined (no affine transform): cuDNN then gets ones and zeros, and
// gradients nobody asked for land in scratch. Scratch lives in a per-device, per-channel-count
// cache, so a training step allocates nothing after its first.
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "engine/tensor/allocator.h"
#include "ops/cuda/batch_norm_kernels.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/handles.h"
#include "ops/cuda/kernel_util.h"
#include "ops/op_checks.h"

namespace ruche::ops::gpu {
namespace {

// ---- argument checks (the CPU op's, plus the device) ----

bool is_bn_data_type(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

// The device's per-tensor checks (ops/op_checks.h does the shapes): x f32, bf16 or f16 on a CUDA
// device; y, dy, dx of x's dtype; statistics f32.
constexpr BatchNormChecks kChecks{
    [](const char* op, const char* name, const Tensor& x) {
      RUCHE_REQUIRE(x.defined()) << op << ": " << name << " is undefined";
      RUCHE_REQUIRE(is_bn_data_type(x.dtype()))
          << op << ": " << name << " must be f32, bf16 or f16, got " << x.str();
      check_arg(x, op, name, x.dtype());
    },
    [](const char* op, const char* name, const Tensor& t, const Tensor& x) {
      check_arg(t, op, name, x.dtype());
    },
    [](const char* op, const char* name, const Tensor& t) { check_arg(t, op, name); }};

// Every defined tensor of one call on the device of `ref` (named ref_name).
using Named = std::pair<const char*, const Tensor*>;
void check_devices(const char* op, const char* ref_name, const Tensor& ref,
                   std::initializer_list<Named> tensors) {
  for (const auto& [name, t] : tensors) {
    if (!t->defined()) continue;
    RUCHE_REQUIRE(t->device() == ref.device())
        << op << ": " << name << " is " << t->str() << " but " << ref_name << " is " << ref.str();
  }
}

// x as the kernels see it, after checking that the data tensors of the call (y, dy, dx) share its
// layout, plain or channels-last (the net plans one layout through a batch norm).
bn::Planes planes_of(const Tensor& x, const char* op, std::initializer_list<Named> data) {
  const bool channels_last = is_channels_last(x, op, "x");
  for (const auto& [name, t] : data) {
    RUCHE_CHECK(!t->defined() || t->layout() == x.layout())
        << op << ": " << name << " is " << t->str() << ", not in the layout of x " << x.str();
  }
  return {x.size(0), x.size(1), x.ndim() == 4 ? x.size(2) * x.size(3) : 1, channels_last};
}

// ---- cuDNN descriptors ----

cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::f32:
      return CUDNN_DATA_FLOAT;
    case DType::f16:
      return CUDNN_DATA_HALF;
    case DType::bf16:
      return CUDNN_DATA_BFLOAT16;
    default:
      break;
  }
  RUCHE_FAIL() << "batch norm: cuDNN has no type for " << dtype_name(t);
}

int as_int(std::int64_t v, const char* op, const Tensor& x) {
  RUCHE_REQUIRE(v <= std::numeric_limits<int>::max())
      << op << ": x " << x.shape().str() << " is too large for cuDNN's batch norm";
  return static_cast<int>(v);
}

// The data descriptor of x (NCHW or NHWC as x's layout; [N, C] as [N, C, 1, 1]) and the
// per-channel descriptor cuDNN derives from it (1 x C x 1 x 1, f32 for f32 / bf16 / f16 data).
class Descriptors {
 public:
  Descriptors(const Tensor& x, const char* op) {
    // cuDNN indexes with 32 bits.
    as_int(x.numel(), op, x);
    const int n = as_int(x.size(0), op, x), c = as_int(x.size(1), op, x);
    const int h = x.ndim() == 4 ? as_int(x.size(2), op, x) : 1;
    const int w = x.ndim() == 4 ? as_int(x.size(3), op, x) : 1;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&data_));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&channels_));
    const cudnnTensorFormat_t format =
        x.layout() == Layout::nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(data_, format, cudnn_type(x.dtype()), n, c, h, w));
    CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(channels_, data_, CUDNN_BATCHNORM_SPATIAL));
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  ~Descriptors() {
    cudnnDestroyTensorDescriptor(channels_);
    cudnnDestroyTensorDescriptor(data_);
  }
  cudnnTensorDescriptor_t data() const { return data_; }
  cudnnTensorDescriptor_t channels() const { return channels_; }

 private:
  cudnnTensorDescriptor_t data_ = nullptr;
  cudnnTensorDescriptor_t channels_ = nullptr;
};

// The descriptors of x's shape, dtype and layout, made on first use and kept (never freed, as the
// library handles), so a step creates none after the first.
const Descriptors& descriptors_for(const Tensor& x, const char* op) {
  static std::mutex mutex;
  static std::map<std::array<std::int64_t, 6>, std::unique_ptr<Descriptors>> all;
  const bool four_d = x.ndim() == 4;
  const std::array<std::int64_t, 6> key{static_cast<std::int64_t>(x.dtype()),
                                        static_cast<std::int64_t>(x.layout()),
                                        x.size(0),
                                        x.size(1),
                                        four_d ? x.size(2) : 1,
                                        four_d ? x.size(3) : 1};
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<Descriptors>& d = all[key];
  if (!d) d = std::make_unique<Descriptors>(x, op);
  return *d;
}

// ---- per-channel scratch ----

// Device vectors of C floats that stand in for undefined arguments and hold what cuDNN computes
// in its conventions. One per (device, C), never freed (as the library handles); ops run in order
// on one stream, so successive calls may share them.
struct ChannelScratch {
  float* ones = nullptr;    // gamma when undefined
  float* zeros = nullptr;   // beta when undefined
  float* invstd = nullptr;  // cuDNN's saved inverse standard deviation
  float* dgamma = nullptr;  // parameter gradients nobody asked for
  float* dbeta = nullptr;
  float* cudnn_running_mean = nullptr;  // cuDNN's running statistics, written and never read
  float* cudnn_running_var = nullptr;
  float* sums = nullptr;  // [2C + 1]: our kernels' per-channel sums and count (bf16)
};
constexpr std::size_t kScratchVectors = 7;

ChannelScratch& scratch_for(Device device, std::int64_t c) {
  static std::mutex mutex;
  static std::map<std::pair<int, std::int64_t>, ChannelScratch> all;
  std::lock_guard<std::mutex> lock(mutex);
  ChannelScratch& s = all[{device.index, c}];
  if (!s.ones) {
    const std::int64_t n = std::max<std::int64_t>(c, 1);
    const std::int64_t floats = static_cast<std::int64_t>(kScratchVectors) * n + 2 * n + 1;
    auto* block = static_cast<float*>(
        allocator_for(device).allocate(static_cast<std::size_t>(floats) * sizeof(float)));
    s = {block,         block + n,     block + 2 * n, block + 3 * n,
         block + 4 * n, block + 5 * n, block + 6 * n, block + 7 * n};
    bn::fill(floats, 0.0f, block, current_stream());
    bn::fill(c, 1.0f, s.ones, current_stream());
  }
  return s;
}

const void* ptr_or(const Tensor& t, const float* fallback) {
  return t.defined() ? t.raw_data() : fallback;
}
void* ptr_or(Tensor& t, float* fallback) { return t.defined() ? t.raw_data() : fallback; }
float* f32_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// Whether x goes to our kernels instead of cuDNN (see the file comment).
bool on_own_kernels(const Tensor& x) { return x.dtype() == DType::bf16; }

// cuDNN's blend factors: result = 1 * computed + 0 * previous (f32 for all our data types).
const float kOne = 1.0f;
const float kZero = 0.0f;

}  // namespace

void batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                 Tensor& y, Tensor& running_mean, Tensor& running_var,
                                 Tensor& save_mean, Tensor& save_var, const BatchNormParams& p) {
  constexpr const char* op = "batch_norm_forward_training";
  const std::int64_t c = check_batch_norm_forward_training(
      op, x, gamma, beta, running_mean, running_var, y, save_mean, save_var, kChecks);
  RUCHE_REQUIRE(!p.fused_relu) << op << ": a fused ReLU is a CPU net's fusion; run the ReLU";
  check_devices(op, "x", x,
                {{"y", &y},
                 {"gamma", &gamma},
                 {"beta", &beta},
                 {"running_mean", &running_mean},
                 {"running_var", &running_var},
                 {"save_mean", &save_mean},
                 {"save_var", &save_var}});
  const bn::Planes g = planes_of(x, op, {{"y", &y}});
  const std::int64_t n = c > 0 ? x.numel() / c : 0;  // values per channel
  RUCHE_REQUIRE(n > 1) << op << ": expected more than 1 value per channel when training, got x "
                       << x.shape().str();

  use_device_of(x);
  ChannelScratch& s = scratch_for(x.device(), c);
  if (on_own_kernels(x)) {
    const cudaStream_t stream = current_stream();
    bn::local_stats(x.dtype(), x.raw_data(), g, s.sums, stream);
    bn::stats_to_moments(c, s.sums, running_mean.data<float>(), running_var.data<float>(),
                         save_mean.data<float>(), save_var.data<float>(), p.momentum, stream);
    bn::normalize(x.dtype(), x.raw_data(), g, save_mean.data<float>(), save_var.data<float>(),
                  p.eps, f32_or_null(gamma), f32_or_null(beta), y.raw_data(), stream);
    return;
  }
  const Descriptors& d = descriptors_for(x, op);
  CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, d.data(), x.raw_data(), d.data(),
      y.raw_data(), d.channels(), ptr_or(gamma, s.ones), ptr_or(beta, s.zeros),
      /*exponentialAverageFactor=*/1.0, s.cudnn_running_mean, s.cudnn_running_var,
      static_cast<double>(p.eps), save_mean.raw_data(), s.invstd));
  bn::finish_training_stats(c, n, save_mean.data<float>(), s.invstd, save_var.data<float>(),
                            running_mean.data<float>(), running_var.data<float>(), p.eps,
                            p.momentum, current_stream());
}

void batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  const Tensor& running_mean, const Tensor& running_var, Tensor& y,
                                  const BatchNormParams& p) {
  constexpr const char* op = "batch_norm_forward_inference";
  const std::int64_t c =
      check_batch_norm_forward_inference(op, x, gamma, beta, running_mean, running_var, y, kChecks);
  RUCHE_REQUIRE(!p.fused_relu) << op << ": a fused ReLU is a CPU net's fusion; run the ReLU";
  check_devices(op, "x", x,
                {{"y", &y},
                 {"gamma", &gamma},
                 {"beta", &beta},
                 {"running_mean", &running_mean},
                 {"running_var", &running_var}});
  const bn::Planes g = planes_of(x, op, {{"y", &y}});
  if (x.numel() == 0) return;

  use_device_of(x);
  if (on_own_kernels(x)) {
    bn::normalize(x.dtype(), x.raw_data(), g, running_mean.data<float>(), running_var.data<float>(),
                  p.eps, f32_or_null(gamma), f32_or_null(beta), y.raw_data(), current_stream());
    return;
  }
  const Descriptors& d = descriptors_for(x, op);
  ChannelScratch& s = scratch_for(x.device(), c);
  CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, d.data(), x.raw_data(), d.data(),
      y.raw_data(), d.channels(), ptr_or(gamma, s.ones), ptr_or(beta, s.zeros),
      running_mean.raw_data(), running_var.raw_data(), static_cast<double>(p.eps)));
}

void batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                         const Tensor& save_mean, const Tensor& save_var, Tensor& dx,
                         Tensor& dgamma, Tensor& dbeta, const BatchNormParams& p) {
  constexpr const char* op = "batch_norm_backward";
  const std::int64_t c =
      check_batch_norm_backward(op, dy, x, gamma, save_mean, save_var, dx, dgamma, dbeta, kChecks);
  check_devices(op, "x", x,
                {{"dy", &dy},
                 {"dx", &dx},
                 {"gamma", &gamma},
                 {"save_mean", &save_mean},
                 {"save_var", &save_var},
                 {"dgamma", &dgamma},
                 {"dbeta", &dbeta}});
  const bn::Planes g = planes_of(x, op, {{"dy", &dy}, {"dx", &dx}});

  use_device_of(x);
  const cudaStream_t stream = current_stream();
  if (x.numel() == 0) {  // sums over no values
    if (dgamma.defined())
      CUDA_CHECK(cudaMemsetAsync(dgamma.raw_data(), 0, dgamma.nbytes(), stream));
    if (dbeta.defined()) CUDA_CHECK(cudaMemsetAsync(dbeta.raw_data(), 0, dbeta.nbytes(), stream));
    return;
  }
  ChannelScratch& s = scratch_for(x.device(), c);
  if (on_own_kernels(x)) {
    bn::backward_reduce(x.dtype(), dy.raw_data(), x.raw_data(), g, save_mean.data<float>(),
                        save_var.data<float>(), p.eps, s.sums, f32_or_null(dgamma),
                        f32_or_null(dbeta), stream);
    bn::backward_apply(x.dtype(), dy.raw_data(), x.raw_data(), f32_or_null(gamma),
                       save_mean.data<float>(), save_var.data<float>(), s.sums, dx.raw_data(), g,
                       p.eps, stream);
    return;
  }
  const Descriptors& d = descriptors_for(x, op);
  bn::inverse_std(c, save_var.data<float>(), p.eps, s.invstd, stream);
  CUDNN_CHECK(cudnnBatchNormalizationBackward(
      cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, &kOne, &kZero, d.data(), x.raw_data(),
      d.data(), dy.raw_data(), d.data(), dx.raw_data(), d.channels(), ptr_or(gamma, s.ones),
      ptr_or(dgamma, s.dgamma), ptr_or(dbeta, s.dbeta), static_cast<double>(p.eps),
      save_mean.raw_data(), s.invstd));
}

// ---- synchronized batch norm ----

void batch_norm_local_stats(const Tensor& x, Tensor& stats) {
  constexpr const char* op = "batch_norm_local_stats";
  const std::int64_t c = check_batch_norm_data(op, "x", x, kChecks);
  check_batch_norm_sums(op, "stats", stats, c, kChecks);
  check_devices(op, "x", x, {{"stats", &stats}});
  const bn::Planes g = planes_of(x, op, {});
  use_device_of(x);
  bn::local_stats(x.dtype(), x.raw_data(), g, stats.data<float>(), current_stream());
}

void batch_norm_stats_to_moments(const Tensor& stats, Tensor& running_mean, Tensor& running_var,
                                 Tensor& save_mean, Tensor& save_var, const BatchNormParams& p) {
  constexpr const char* op = "batch_norm_stats_to_moments";
  const std::int64_t c = check_batch_norm_stats_to_moments(op, stats, running_mean, running_var,
                                                           save_mean, save_var, kChecks);
  check_devices(op, "stats", stats,
                {{"running_mean", &running_mean},
                 {"running_var", &running_var},
                 {"save_mean", &save_mean},
                 {"save_var", &save_var}});
  use_device_of(stats);
  bn::stats_to_moments(c, stats.data<float>(), running_mean.data<float>(),
                       running_var.data<float>(), save_mean.data<float>(), save_var.data<float>(),
                       p.momentum, current_stream());
}

void batch_norm_backward_reduce(const Tensor& dy, const Tensor& x, const Tensor& save_mean,
                                const Tensor& save_var, Tensor& sums, Tensor& dgamma, Tensor& dbeta,
                                const BatchNormParams& p) {
  constexpr const char* op = "batch_norm_backward_reduce";
  check_batch_norm_backward_reduce(op, dy, x, save_mean, save_var, sums, dgamma, dbeta, kChecks);
  check_devices(op, "x", x,
                {{"dy", &dy},
                 {"save_mean", &save_mean},
                 {"save_var", &save_var},
                 {"sums", &sums},
                 {"dgamma", &dgamma},
                 {"dbeta", &dbeta}});
  const bn::Planes g = planes_of(x, op, {{"dy", &dy}});
  use_device_of(x);
  bn::backward_reduce(x.dtype(), dy.raw_data(), x.raw_data(), g, save_mean.data<float>(),
                      save_var.data<float>(), p.eps, sums.data<float>(), f32_or_null(dgamma),
                      f32_or_null(dbeta), current_stream());
}

void batch_norm_backward_apply(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                               const Tensor& save_mean, const Tensor& save_var, const Tensor& sums,
                               Tensor& dx, const BatchNormParams& p) {
  constexpr const char* op = "batch_norm_backward_apply";
  check_batch_norm_backward_apply(op, dy, x, gamma, save_mean, save_var, sums, dx, kChecks);
  check_devices(op, "x", x,
                {{"dy", &dy},
                 {"dx", &dx},
                 {"gamma", &gamma},
                 {"save_mean", &save_mean},
                 {"save_var", &save_var},
                 {"sums", &sums}});
  const bn::Planes g = planes_of(x, op, {{"dy", &dy}, {"dx", &dx}});
  // The CPU op also requires a positive count; here it is on the device (reading it would stall
  // the stream), and a zero count gives non-finite dx for the NaN guard instead.
  use_device_of(x);
  bn::backward_apply(x.dtype(), dy.raw_data(), x.raw_data(), f32_or_null(gamma),
                     save_mean.data<float>(), save_var.data<float>(), sums.data<float>(),
                     dx.raw_data(), g, p.eps, current_stream());
}

}  // namespace ruche::ops::gpu
