// Losses on CUDA: mean squared error, the pointwise losses (L1, smooth L1, BCE with logits) and
// softmax cross-entropy, as ops/cpu/loss.cc. Every sum is
// deterministic: fixed per-block (or per-row) partial sums in double, then one block adds the
// partials in a fixed order.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/float_types.cuh"
#include "ops/cuda/host_wait.h"
#include "ops/cuda/kernel_util.h"
#include "ops/cuda/scratch.h"
#include "ops/pointwise_loss.h"

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

__global__ void pointwise_loss_partials(PointwiseLoss kind, float beta, std::int64_t n,
                                        const float* pred, const float* target, double* partials) {
  __shared__ double shared[32];
  double sum = 0.0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    sum += pointwise_loss(kind, beta, pred[i], target[i]);
  }
  sum = block_reduce(sum, shared, SumOp{});
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

__global__ void pointwise_loss_backward_kernel(PointwiseLoss kind, float beta, std::int64_t n,
                                               const float* pred, const float* target, float* dpred,
                                               float factor) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dpred[i] = factor * pointwise_loss_grad(kind, beta, pred[i], target[i]);
  }
}

// ---- softmax cross-entropy ----
// With label smoothing e over C classes and class weights w (1 without), as the CPU op:
//   loss = [(1 - e) sum_n w[y_n] (-log p[n, y_n]) + e / C sum_n sum_c w[c] (-log p[n, c])] / W,
//   W = sum_n w[y_n], n over the rows whose label is not ignored (`ignored`: ops.h's
//   CrossEntropyParams::ignored(), a number no i32 label equals when none is).

// Per row: the row's -w[y] log p[y], -sum_c w[c] log p[c], w[y] and whether it counts (1 or 0).
struct RowTerms {
  double nll, smooth, weight, counted;
};

// Threads per row: a power of two from 32 to 256, about C.
unsigned row_threads(std::int64_t c) {
  unsigned t = 32;
  while (t < 256 && t < c) t *= 2;
  return t;
}

// Makes the block-reduced value in thread 0 every thread's.
template <typename T>
__device__ T broadcast(T v, T* slot) {
  if (threadIdx.x == 0) *slot = v;
  __syncthreads();
  const T out = *slot;
  __syncthreads();
  return out;
}

__device__ bool label_in_range(std::int32_t y, std::int64_t c) { return y >= 0 && y < c; }

// One block per row: the probabilities and the row's terms. log p[c] = x[c] - lse comes from the
// logits, so a tiny p never becomes log(0); the sums run in double, as on the CPU. A bad label
// leaves the row's terms zero and records the first such row and its label in *first_bad (integer
// atomics are exact, so the result does not depend on the order).
template <typename T>
__global__ void cross_entropy_rows_kernel(std::int64_t c, const T* logits,
                                          const std::int32_t* labels, std::int64_t ignored,
                                          const float* weights, float* probs, RowTerms* terms,
                                          unsigned long long* first_bad) {
  __shared__ float fshared[32];
  __shared__ double dshared[32];
  __shared__ float fslot;
  __shared__ double dslot;
  const std::int64_t row = blockIdx.x;
  const T* x = logits + row * c;
  float* p = probs + row * c;
  float m = -INFINITY;
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) m = fmaxf(m, to_float(x[j]));
  m = broadcast(block_reduce(m, fshared, MaxOp{}), &fslot);
  double sum = 0.0;
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    sum += exp(static_cast<double>(to_float(x[j])) - m);
  }
  sum = broadcast(block_reduce(sum, dshared, SumOp{}), &dslot);
  const double lse = m + log(sum);
  double smooth = 0.0;
  for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    const double logp = static_cast<double>(to_float(x[j])) - lse;
    p[j] = static_cast<float>(exp(logp));
    smooth -= (weights ? static_cast<double>(weights[j]) : 1.0) * logp;
  }
  smooth = block_reduce(smooth, dshared, SumOp{});
  if (threadIdx.x == 0) {
    const std::int32_t y = labels[row];
    if (y == ignored) {
      terms[row] = RowTerms{0.0, 0.0, 0.0, 0.0};
      return;
    }
    if (!label_in_range(y, c)) {  // ops.h's bad_label_code, compared as unsigned
      atomicMin(first_bad,
                static_cast<unsigned long long>(row) << 32 | static_cast<std::uint32_t>(y));
      terms[row] = RowTerms{0.0, 0.0, 0.0, 0.0};
      return;
    }
    const double wy = weights ? static_cast<double>(weights[y]) : 1.0;
    terms[row] = RowTerms{-wy * (static_cast<double>(to_float(x[y])) - lse), smooth, wy, 1.0};
  }
}

// One block: the loss from the rows' terms, added in a fixed order.
__global__ void cross_entropy_total_kernel(std::int64_t n, std::int64_t c, const RowTerms* terms,
                                           double smoothing, float* loss) {
  __shared__ double shared[32];
  double nll = 0.0, smooth = 0.0, weight = 0.0, counted = 0.0;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    nll += terms[i].nll;
    smooth += terms[i].smooth;
    weight += terms[i].weight;
    counted += terms[i].counted;
  }
  nll = block_reduce(nll, shared, SumOp{});
  smooth = block_reduce(smooth, shared, SumOp{});
  weight = block_reduce(weight, shared, SumOp{});
  counted = block_reduce(counted, shared, SumOp{});
  // Every row ignored gives 0 and n == 0 gives 0 / 0 = NaN, as the CPU op.
  if (threadIdx.x == 0) {
    *loss = n > 0 && counted == 0.0
                ? 0.0f
                : static_cast<float>((1.0 - smoothing) * nll / weight +
                                     smoothing / static_cast<double>(c) * smooth / weight);
  }
}

// The backward's constants: [0] (1 - e) dloss / W, [1] e / C dloss / W (both 0 when every row is
// ignored), [2] sum_c w[c] (C without weights). One block, fixed order.
__global__ void cross_entropy_backward_constants_kernel(std::int64_t n, std::int64_t c,
                                                        const std::int32_t* labels,
                                                        std::int64_t ignored, const float* weights,
                                                        double smoothing, double dloss,
                                                        double* constants) {
  __shared__ double shared[32];
  double total = 0.0, class_total = 0.0, counted = 0.0;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const std::int32_t y = labels[i];
    if (y != ignored && label_in_range(y, c)) {
      total += weights ? static_cast<double>(weights[y]) : 1.0;
      counted += 1.0;
    }
  }
  if (weights) {
    for (std::int64_t j = threadIdx.x; j < c; j += blockDim.x) class_total += weights[j];
  }
  total = block_reduce(total, shared, SumOp{});
  class_total = block_reduce(class_total, shared, SumOp{});
  counted = block_reduce(counted, shared, SumOp{});
  if (threadIdx.x == 0) {
    const double per_target = counted == 0.0 ? 0.0 : dloss / total;
    constants[0] = (1.0 - smoothing) * per_target;
    constants[1] = smoothing / static_cast<double>(c) * per_target;
    constants[2] = weights ? class_total : static_cast<double>(c);
  }
}

// d/dx[n, j] = dloss / W * ((1 - e) w[y_n] (p_j - [j == y_n]) + e / C (p_j sum_c w[c] - w[j])).
template <typename D>
__global__ void cross_entropy_backward_kernel(std::int64_t n, std::int64_t c, const float* probs,
                                              const std::int32_t* labels, std::int64_t ignored,
                                              const float* weights, const double* constants,
                                              D* dlogits) {
  const double hard = constants[0], soft = constants[1], class_weight_sum = constants[2];
  const std::int64_t total = n * c;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const std::int64_t row = i / c, j = i - row * c;
    const std::int32_t y = labels[row];
    if (y == ignored) {
      dlogits[i] = from_float<D>(0.0f);
      continue;
    }
    if (!label_in_range(y, c)) {
      dlogits[i] = from_float<D>(NAN);  // the forward has already thrown for this label
      continue;
    }
    const double wy = weights ? static_cast<double>(weights[y]) : 1.0;
    const double wj = weights ? static_cast<double>(weights[j]) : 1.0;
    const double p = probs[i];
    const double onehot = j == y ? 1.0 : 0.0;
    dlogits[i] = from_float<D>(
        static_cast<float>(hard * wy * (p - onehot) + soft * (p * class_weight_sum - wj)));
  }
}

// `t` is defined, on a CUDA device, contiguous and f32, bf16 or f16.
void check_float_arg(const Tensor& t, const char* op, const char* name) {
  RUCHE_REQUIRE(t.defined()) << op << ": " << name << " is not given";
  RUCHE_REQUIRE(t.device().is_cuda())
      << op << ": " << name << " must be on a CUDA device, got " << t.str();
  RUCHE_REQUIRE(t.dtype() == DType::f32 || t.dtype() == DType::bf16 || t.dtype() == DType::f16)
      << op << ": " << name << " must be f32, bf16 or f16, got " << t.str();
  RUCHE_REQUIRE(t.is_contiguous()) << op << ": " << name << " " << t.str() << " is not contiguous";
}

// The CPU op's checks that need no look at the labels' values: labels i32 [N], smoothing in
// [0, 1], class_weights f32 [C] when given.
void check_targets(const char* op, const Tensor& labels, std::int64_t n, std::int64_t c,
                   const CrossEntropyParams& p) {
  check_arg(labels, op, "labels", DType::i32);
  RUCHE_REQUIRE(labels.shape() == Shape{n})
      << op << ": labels must be [" << n << "] to match the logits' batch, got " << labels.str();
  RUCHE_REQUIRE(p.label_smoothing >= 0.0f && p.label_smoothing <= 1.0f)
      << op << ": label_smoothing must be in [0, 1], got " << p.label_smoothing;
  if (p.class_weights.defined()) {
    check_arg(p.class_weights, op, "class_weights");
    RUCHE_REQUIRE(p.class_weights.shape() == Shape{c})
        << op << ": class_weights must be [" << c << "], got " << p.class_weights.str();
  }
  RUCHE_REQUIRE(n < (std::int64_t{1} << 31)) << op << ": " << n << " rows exceed one CUDA grid";
}

}  // namespace

void mse_forward(const Tensor& pred, const Tensor& target, Tensor& loss) {
  constexpr const char* op = "mse_forward";
  check_arg(pred, op, "pred");
  check_arg(target, op, "target");
  check_arg(loss, op, "loss");
  check_shape_as(target, pred, op, "target", "pred");
  RUCHE_REQUIRE(loss.numel() == 1) << op << ": loss must have one element, got " << loss.str();
  RUCHE_REQUIRE(pred.numel() > 0) << op << ": pred is empty";  // as the CPU op
  use_device_of(pred);
  const std::int64_t n = pred.numel();
  const unsigned blocks = std::min<unsigned>(blocks_for(n), kPartials);
  Scratch partials(pred.device(), blocks * sizeof(double));
  const cudaStream_t s = current_stream();
  squared_error_partials<<<blocks, kThreads, 0, s>>>(n, pred.data<float>(), target.data<float>(),
                                                     partials.as<double>());
  CUDA_CHECK_LAUNCH(squared_error_partials);
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
  const float factor =
      static_cast<float>(2.0 * static_cast<double>(dloss) / static_cast<double>(n));
  mse_backward_kernel<<<blocks_for(n), kThreads, 0, current_stream()>>>(
      n, pred.data<float>(), target.data<float>(), dpred.data<float>(), factor);
  CUDA_CHECK_LAUNCH(mse_backward_kernel);
}

void pointwise_loss_forward(const PointwiseLossParams& p, const Tensor& pred, const Tensor& target,
                            Tensor& loss) {
  constexpr const char* op = "pointwise_loss_forward";
  check_arg(pred, op, "pred");
  check_arg(target, op, "target");
  check_arg(loss, op, "loss");
  check_shape_as(target, pred, op, "target", "pred");
  RUCHE_REQUIRE(loss.numel() == 1) << op << ": loss must have one element, got " << loss.str();
  RUCHE_REQUIRE(pred.numel() > 0) << op << ": pred is empty";  // as the CPU op
  RUCHE_REQUIRE(p.kind != PointwiseLoss::smooth_l1 || p.beta > 0)
      << op << ": smooth_l1 needs beta > 0, got " << p.beta;
  use_device_of(pred);
  const std::int64_t n = pred.numel();
  const unsigned blocks = std::min<unsigned>(blocks_for(n), kPartials);
  Scratch partials(pred.device(), blocks * sizeof(double));
  const cudaStream_t s = current_stream();
  pointwise_loss_partials<<<blocks, kThreads, 0, s>>>(p.kind, p.beta, n, pred.data<float>(),
                                                      target.data<float>(), partials.as<double>());
  CUDA_CHECK_LAUNCH(pointwise_loss_partials);
  mean_of_partials<<<1, kThreads, 0, s>>>(blocks, partials.as<double>(), n, loss.data<float>());
  CUDA_CHECK_LAUNCH(mean_of_partials);
}

void pointwise_loss_backward(const PointwiseLossParams& p, const Tensor& pred, const Tensor& target,
                             Tensor& dpred, float dloss) {
  constexpr const char* op = "pointwise_loss_backward";
  check_arg(pred, op, "pred");
  check_arg(target, op, "target");
  check_arg(dpred, op, "dpred");
  check_shape_as(target, pred, op, "target", "pred");
  check_shape_as(dpred, pred, op, "dpred", "pred");
  RUCHE_REQUIRE(p.kind != PointwiseLoss::smooth_l1 || p.beta > 0)
      << op << ": smooth_l1 needs beta > 0, got " << p.beta;
  const std::int64_t n = pred.numel();
  if (n == 0) return;
  use_device_of(pred);
  const float factor = static_cast<float>(static_cast<double>(dloss) / static_cast<double>(n));
  pointwise_loss_backward_kernel<<<blocks_for(n), kThreads, 0, current_stream()>>>(
      p.kind, p.beta, n, pred.data<float>(), target.data<float>(), dpred.data<float>(), factor);
  CUDA_CHECK_LAUNCH(pointwise_loss_backward_kernel);
}

void softmax_cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs,
                                   Tensor& loss, const CrossEntropyParams& p) {
  constexpr const char* op = "softmax_cross_entropy_forward";
  check_float_arg(logits, op, "logits");
  RUCHE_REQUIRE(logits.ndim() == 2) << op << ": logits must be [N, C], got " << logits.str();
  check_arg(probs, op, "probs");
  check_shape_as(probs, logits, op, "probs", "logits");
  check_arg(loss, op, "loss");
  RUCHE_REQUIRE(loss.numel() == 1)
      << op << ": loss must hold one element, got shape " << loss.shape().str();
  const std::int64_t n = logits.size(0), c = logits.size(1);
  check_targets(op, labels, n, c, p);
  use_device_of(logits);
  const cudaStream_t s = current_stream();
  const float* weights = p.class_weights.defined() ? p.class_weights.data<float>() : nullptr;
  // A kernel cannot throw: the first bad row goes to p.label_check, read by the caller with the
  // step's other values, or here to scratch, read back at once (a wait for the device).
  const bool deferred = p.label_check.defined() && c > 0;
  if (deferred) {
    check_arg(p.label_check, op, "label_check", DType::i64);
    RUCHE_REQUIRE(p.label_check.numel() == 1)
        << op << ": label_check must hold one element, got " << p.label_check.str();
  }
  const std::size_t terms_bytes = static_cast<std::size_t>(n) * sizeof(RowTerms);
  Scratch scratch(logits.device(), terms_bytes + sizeof(unsigned long long));
  auto* terms = scratch.as<RowTerms>();
  auto* first_bad = deferred
                        ? static_cast<unsigned long long*>(p.label_check.raw_data())
                        : reinterpret_cast<unsigned long long*>(scratch.as<char>() + terms_bytes);
  CUDA_CHECK(cudaMemsetAsync(first_bad, 0xFF, sizeof(unsigned long long), s));  // kNoBadLabel
  if (n > 0 && c > 0) {
    visit_float_dtype(logits.dtype(), [&](auto logit_type) {
      using T = decltype(logit_type);
      cross_entropy_rows_kernel<<<static_cast<unsigned>(n), row_threads(c), 0, s>>>(
          c, static_cast<const T*>(logits.raw_data()), labels.data<std::int32_t>(), p.ignored(),
          weights, probs.data<float>(), terms, first_bad);
      CUDA_CHECK_LAUNCH(cross_entropy_rows_kernel);
    });
  }
  cross_entropy_total_kernel<<<1, kThreads, 0, s>>>(
      n, c, terms, static_cast<double>(p.label_smoothing), loss.data<float>());
  CUDA_CHECK_LAUNCH(cross_entropy_total_kernel);
  if (deferred) return;
  std::int64_t bad = kNoBadLabel;
  CUDA_CHECK(cudaMemcpyAsync(&bad, first_bad, sizeof bad, cudaMemcpyDeviceToHost, s));
  wait_stream(s);
  if (n > 0 && c == 0) {  // no classes: every label is out of range, the first row's too
    std::int32_t label = 0;
    CUDA_CHECK(cudaMemcpyAsync(&label, labels.data<std::int32_t>(), sizeof label,
                               cudaMemcpyDeviceToHost, s));
    wait_stream(s);
    bad = bad_label_code(0, label);
  }
  // probs and loss are written before it throws.
  RUCHE_REQUIRE(bad == kNoBadLabel) << bad_label_message(op, bad, c);
}

void softmax_cross_entropy_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits,
                                    float dloss, const CrossEntropyParams& p) {
  constexpr const char* op = "softmax_cross_entropy_backward";
  check_arg(probs, op, "probs");
  RUCHE_REQUIRE(probs.ndim() == 2) << op << ": probs must be [N, C], got " << probs.str();
  check_float_arg(dlogits, op, "dlogits");
  check_shape_as(dlogits, probs, op, "dlogits", "probs");
  const std::int64_t n = probs.size(0), c = probs.size(1);
  check_targets(op, labels, n, c, p);
  if (n == 0 || c == 0) return;
  use_device_of(probs);
  const cudaStream_t s = current_stream();
  const float* weights = p.class_weights.defined() ? p.class_weights.data<float>() : nullptr;
  // Labels are not checked again here (that would cost a second wait per step): the forward
  // threw for them; rows with a bad label get NaN.
  Scratch constants(probs.device(), 3 * sizeof(double));
  cross_entropy_backward_constants_kernel<<<1, kThreads, 0, s>>>(
      n, c, labels.data<std::int32_t>(), p.ignored(), weights,
      static_cast<double>(p.label_smoothing), static_cast<double>(dloss), constants.as<double>());
  CUDA_CHECK_LAUNCH(cross_entropy_backward_constants_kernel);
  visit_float_dtype(dlogits.dtype(), [&](auto dlogit_type) {
    using D = decltype(dlogit_type);
    cross_entropy_backward_kernel<<<blocks_for(n * c), kThreads, 0, s>>>(
        n, c, probs.data<float>(), labels.data<std::int32_t>(), p.ignored(), weights,
        constants.as<double>(), static_cast<D*>(dlogits.raw_data()));
    CUDA_CHECK_LAUNCH(cross_entropy_backward_kernel);
  });
}

}  // namespace ruche::ops::gpu
