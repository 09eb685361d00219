// The CUDA implementations of ops.h that exist so far, in ruche::ops::gpu; cuda_op_table.cc puts
// them in the CUDA table (an op missing here is a clear "not implemented on cuda" error).
#pragma once

#include "ops/ops.h"

namespace ruche::ops::gpu {

// eltwise.cu: f32, bf16 or f16 tensors, one dtype per call (dropout's mask u8); float compute,
// one rounding on store.
void activation_forward(Activation kind, float alpha, const Tensor& x, Tensor& y);
void activation_backward(Activation kind, float alpha, const Tensor& y, const Tensor& dy,
                         Tensor& dx);
void heaviside_forward(const Tensor& x, Tensor& y, float value_at_zero);
void add(const Tensor& a, const Tensor& b, Tensor& y);
void axpy(float alpha, const Tensor& x, Tensor& y);
void scale(float alpha, Tensor& x);
void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, float p, const RngStream& stream);
void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, float p);

// softmax.cu: f32, bf16 or f16, one dtype per call; float compute.
void softmax_forward(const Tensor& x, Tensor& y);
void softmax_backward(const Tensor& y, const Tensor& dy, Tensor& dx);

// loss.cu
void mse_forward(const Tensor& pred, const Tensor& target, Tensor& loss);
void mse_backward(const Tensor& pred, const Tensor& target, Tensor& dpred, float dloss);

// ---- convolution and pooling (conv.cc, pooling.cu) ----
// Convolution: x, w, b, y (and their gradients) f32, or bf16 / f16 (fp32 compute); w and b have
// x's dtype. Pooling: f32.
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dParams& p);
void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dParams& p);
void conv2d_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,
                             const Conv2dParams& p);
// The convolution algorithm cache, for tests: shapes cached (all devices, all math settings),
// algorithm choices made so far, and what one shape got under the current gpu_math().
struct ConvAlgorithms {
  bool cached = false;  // the shape has a cache entry under the current settings
  // cuDNN's cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t values; -1: not chosen yet.
  int forward = -1, backward_data = -1, backward_weights = -1;
  std::size_t forward_workspace = 0, backward_data_workspace = 0, backward_weights_workspace = 0;
};
std::size_t conv_algorithm_cache_size();
std::uint64_t conv_algorithm_searches();
// x (its device, dtype and shape) and w (its shape) as passed to the ops.
ConvAlgorithms conv_algorithms(const Tensor& x, const Tensor& w, const Conv2dParams& p);
void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dParams& p);
void max_pool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx,
                         const Pool2dParams& p);
void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dParams& p);
void avg_pool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dParams& p);
void global_avg_pool_forward(const Tensor& x, Tensor& y);
void global_avg_pool_backward(const Tensor& dy, Tensor& dx);

// ---- batch norm (batch_norm.cc, batch_norm.cu) ----
// x, y, dy, dx f32, or bf16 / f16 with f32 gamma, beta and statistics. The count checks of the
// sync pieces (n > 1, n > 0) are not made: the count is on the device; a bad one gives NaN.
void batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                 Tensor& y, Tensor& running_mean, Tensor& running_var,
                                 Tensor& save_mean, Tensor& save_var, const BatchNormParams& p);
void batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  const Tensor& running_mean, const Tensor& running_var, Tensor& y,
                                  const BatchNormParams& p);
void batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                         const Tensor& save_mean, const Tensor& save_var, Tensor& dx,
                         Tensor& dgamma, Tensor& dbeta, const BatchNormParams& p);
void batch_norm_local_stats(const Tensor& x, Tensor& stats);
void batch_norm_stats_to_moments(const Tensor& stats, Tensor& running_mean, Tensor& running_var,
                                 Tensor& save_mean, Tensor& save_var, const BatchNormParams& p);
void batch_norm_backward_reduce(const Tensor& dy, const Tensor& x, const Tensor& save_mean,
                                const Tensor& save_var, Tensor& sums, Tensor& dgamma, Tensor& dbeta,
                                const BatchNormParams& p);
void batch_norm_backward_apply(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                               const Tensor& save_mean, const Tensor& save_var, const Tensor& sums,
                               Tensor& dx, const BatchNormParams& p);

// ---- linear, cross-entropy, penalties (linear.cc, loss.cu, penalty.cu) ----
// linear.cc: f32, bf16 or f16 inputs (the two of a product alike), output f32 or the inputs' dtype.
void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y);
void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx);
void linear_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db);
// loss.cu: logits and dlogits f32, bf16 or f16; probs f32. Forward copies one word back to check
// the labels; backward does not check them again (a row with a bad label gets NaN).
void softmax_cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs,
                                   Tensor& loss, const CrossEntropyParams& p);
void softmax_cross_entropy_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits,
                                    float dloss, const CrossEntropyParams& p);
// penalty.cu
void l1_penalty_forward(const Tensor& w, float coeff, Tensor& loss);
void l1_penalty_backward(const Tensor& w, float coeff, Tensor& dw);
void l2_penalty_forward(const Tensor& w, float coeff, Tensor& loss);
void l2_penalty_backward(const Tensor& w, float coeff, Tensor& dw);

// ---- optimizer, casts, non-finite checks (optim.cu, cast.cu) ----
void optimizer_update(const OptimizerStep& step, Tensor& params, const Tensor& grads,
                      Tensor& slot0, Tensor& slot1);
void sum_squares_finite(const Tensor& x, std::int64_t count, SumSquaresFinite& out);
void cast(const Tensor& x, Tensor& y);

}  // namespace ruche::ops::gpu
