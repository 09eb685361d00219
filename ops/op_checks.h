// Argument checks both backends share: the shapes of an op's arguments and how they relate, with
// one set of messages (ops/cpu is the specification; tests match these texts). What a backend
// accepts of one tensor (defined, its device, its dtypes, contiguous) it passes in as a hook and
// checks in the same order as before; device-only limits (cuBLAS / cuDNN int ranges, devices
// alike) each backend checks after.
#pragma once

#include <cstdint>

#include "engine/tensor/tensor.h"
#include "ops/axis_split.h"
#include "ops/ops.h"

namespace ruche::ops {

// The backend's check of argument `name` of `op`; `lead` is the op's first tensor argument (x, or
// dx), whose dtype a backend may require of the rest.
using TensorCheck = void (*)(const char* op, const char* name, const Tensor& t, const Tensor& lead);

// x [N, in], w [out, in], y [N, out] (names as the op calls them) and an optional b [out].
void check_linear_args(const char* op, const Tensor& x, const char* x_name, const Tensor& w,
                       const char* w_name, const Tensor& y, const char* y_name, const Tensor& b,
                       const char* b_name, TensorCheck check);

// x (the input side), w and y (the output side) fit p; b, when given, is [O].
void check_conv2d_args(const char* op, const Tensor& x, const char* x_name, const Tensor& w,
                       const char* w_name, const Tensor& y, const char* y_name, const Tensor& b,
                       const char* b_name, const Conv2dParams& p, TensorCheck check);

// As check_conv2d_args for a transposed convolution: x (the input side), w [C, O/groups, KH, KW]
// and y (the output side) fit p; b, when given, is [O].
void check_deconv2d_args(const char* op, const Tensor& x, const char* x_name, const Tensor& w,
                         const char* w_name, const Tensor& y, const char* y_name, const Tensor& b,
                         const char* b_name, const Deconv2dParams& p, TensorCheck check);

// x (the input side) and y (the output side) are [N, C, *, *] with equal N and C, non-empty
// planes, and p's scale factors are >= 0.
void check_upsample2d_args(const char* op, const Tensor& x, const char* x_name, const Tensor& y,
                           const char* y_name, const UpsampleParams& p, TensorCheck check);

// Batch norm's hooks: `data` checks x itself (it sets the dtype), `like` a tensor shaped as x (y,
// dy, dx), `stat` an f32 per-channel vector or reduction buffer.
struct BatchNormChecks {
  void (*data)(const char* op, const char* name, const Tensor& x);
  TensorCheck like;
  void (*stat)(const char* op, const char* name, const Tensor& t);
};

// x must be [N, C] or [N, C, H, W]; returns C.
std::int64_t check_batch_norm_data(const char* op, const char* name, const Tensor& x,
                                   const BatchNormChecks& check);
// t has x's shape (y, dy, dx).
void check_batch_norm_like(const char* op, const char* name, const Tensor& t, const Tensor& x,
                           const BatchNormChecks& check);
// t (when required or given) is a per-channel vector [C].
void check_batch_norm_channels(const char* op, const char* name, const Tensor& t, std::int64_t c,
                               bool required, const BatchNormChecks& check);
// A reduction buffer [2C + 1]: two per-channel rows and the count.
void check_batch_norm_sums(const char* op, const char* name, const Tensor& t, std::int64_t c,
                           const BatchNormChecks& check);

// The checks of each batch norm op; the ones given C return it.
std::int64_t check_batch_norm_forward_training(const char* op, const Tensor& x, const Tensor& gamma,
                                               const Tensor& beta, const Tensor& running_mean,
                                               const Tensor& running_var, const Tensor& y,
                                               const Tensor& save_mean, const Tensor& save_var,
                                               const BatchNormChecks& check);
std::int64_t check_batch_norm_forward_inference(const char* op, const Tensor& x,
                                                const Tensor& gamma, const Tensor& beta,
                                                const Tensor& running_mean,
                                                const Tensor& running_var, const Tensor& y,
                                                const BatchNormChecks& check);
std::int64_t check_batch_norm_backward(const char* op, const Tensor& dy, const Tensor& x,
                                       const Tensor& gamma, const Tensor& save_mean,
                                       const Tensor& save_var, const Tensor& dx,
                                       const Tensor& dgamma, const Tensor& dbeta,
                                       const BatchNormChecks& check);
std::int64_t check_batch_norm_stats_to_moments(const char* op, const Tensor& stats,
                                               const Tensor& running_mean,
                                               const Tensor& running_var, const Tensor& save_mean,
                                               const Tensor& save_var,
                                               const BatchNormChecks& check);
std::int64_t check_batch_norm_backward_reduce(const char* op, const Tensor& dy, const Tensor& x,
                                              const Tensor& save_mean, const Tensor& save_var,
                                              const Tensor& sums, const Tensor& dgamma,
                                              const Tensor& dbeta, const BatchNormChecks& check);
std::int64_t check_batch_norm_backward_apply(const char* op, const Tensor& dy, const Tensor& x,
                                             const Tensor& gamma, const Tensor& save_mean,
                                             const Tensor& save_var, const Tensor& sums,
                                             const Tensor& dx, const BatchNormChecks& check);

// A training step's tallies (ops/step_tallies.h): probs [N, C] f32, labels i32 [N], out f32 [2],
// n <= N; returns C.
std::int64_t check_top1_hits(const Tensor& probs, const Tensor& labels, std::int64_t n,
                             const Tensor& out);
// prediction and target f32 of one size and N rows, out f32 [3], n <= N; returns the values per
// row.
std::int64_t check_regression_errors(const Tensor& prediction, const Tensor& target, std::int64_t n,
                                     const Tensor& out);
// x f32 contiguous with count in [0, numel], out i64 [2].
void check_sum_squares_finite(const Tensor& x, std::int64_t count, const Tensor& out);

// copy_into_axis / copy_from_axis: part and whole agree on every dim but `axis`, part fits at
// `offset`, both in one layout. Returns whole as it lies in memory, [outer, C, inner] around the
// axis: plain as split_at; along the channels of a [N, C, H, W] nhwc tensor [N * H * W, C, 1];
// of an nChwXc one [N, C, H * W], which holds when part's channels and offset are whole blocks
// (an image's run of whole blocks is contiguous, as a run of channels is in NCHW).
AxisSplit check_axis_block(const char* op, const Tensor& part, const Tensor& whole, int axis,
                           std::int64_t offset);

}  // namespace ruche::ops
