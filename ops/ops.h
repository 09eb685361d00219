// The op table: one function per op, forward and backward; the device of the tensors picks the
// implementation (ops/cpu or ops/cuda). Callers pass outputs already allocated (the net's static
// memory plan), so an op allocates nothing after its first call with a given shape.
//
// Conventions (PyTorch's): NCHW activations, OIHW convolution weights ([out, in/groups, kh, kw]),
// linear weights [out, in]. Outputs are overwritten unless a comment says "adds to". An optional
// tensor argument may be undefined (Tensor()). Every op checks shapes, dtypes and devices and
// throws ruche::Error naming the op on a mismatch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/rng/philox.h"
#include "engine/tensor/tensor.h"
#include "ops/optimizer_update.h"

namespace ruche::ops {

// ---- threads ----
// Cores used by CPU ops (oneDNN and our loops); 0 = OMP_NUM_THREADS or all cores.
void set_num_threads(int threads);
int num_threads();
// RUCHE_CPU_REFERENCE=1 (read once): every CPU op runs its plain NCHW code, with no fusion, no
// blocked layouts and no memory plan, so the fast path can be checked and timed against it.
bool cpu_reference_path();
// Tests turn it on and off to compare the two paths; set it before building a net.
void set_cpu_reference_path(bool on);

// ---- GPU math (CPU ops are always strict fp32) ----
// fp32: strict, no TF32 in cuDNN or cuBLAS, so a GPU run can match the CPU; tf32: tensor-core
// TF32 allowed; bf16 / fp16: activations and weights for compute in that type, fp32 master
// weights (the trainer's autocast), TF32 allowed for what stays fp32.
enum class Precision : std::uint8_t { fp32, tf32, bf16, fp16 };
// "fp32", "tf32", "bf16", "fp16"; throws ruche::Error naming the valid ones otherwise.
Precision parse_precision(const std::string& text);
const char* precision_name(Precision p);
struct GpuMath {
  Precision precision = Precision::fp32;
  // Time every cuDNN convolution algorithm once per shape and keep the fastest (as
  // torch.backends.cudnn.benchmark); otherwise cuDNN's heuristic ranking picks.
  bool cudnn_benchmark = false;
  // --deterministic: only deterministic cuDNN algorithms, so GPU reruns give the same numbers
  // (PyTorch's cudnn.deterministic); off, cuDNN's fastest, whose sums may differ run to run.
  bool deterministic = false;
  std::size_t workspace_limit = std::size_t{512} << 20;  // bytes a convolution may borrow
};
// Process-wide; set once before the first op (the trainer does, from --precision and friends).
void set_gpu_math(const GpuMath& math);
const GpuMath& gpu_math();

// ---- convolution ----
struct Conv2dParams {
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
  // forward: y = max(0, y) in the same pass (the CPU net fuses an in-place ReLU that follows;
  // CPU ops only). Backward ignores it: the ReLU's own backward masks dy.
  bool fused_relu = false;
};
// The output shape for input x [N, C, H, W] and weight [O, C/groups, KH, KW]; throws when they do
// not fit.
Shape conv2d_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p);
// y = conv(x, w) + b
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dParams& p);
void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dParams& p);
// dw (and db when defined) from the input and the output gradient.
void conv2d_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,
                             const Conv2dParams& p);

// ---- transposed convolution (torch.nn.ConvTranspose2d, Caffe's Deconvolution) ----
// x [N, C, H, W], weight [C, O/groups, KH, KW] (PyTorch's layout: the weight of the convolution
// whose backward data this is), y [N, O, OH, OW] with
//   OH = (H - 1) * stride - 2 * pad + dilation * (KH - 1) + output_padding + 1
// output_padding (extra rows and columns at the bottom and right) must be smaller than the stride
// or the dilation, as PyTorch requires.
struct Deconv2dParams : Conv2dParams {
  int output_padding_h = 0, output_padding_w = 0;
};
// The output shape for input x and weight w; throws when they do not fit.
Shape deconv2d_output_shape(const Shape& x, const Shape& w, const Deconv2dParams& p);
// y = conv_transpose(x, w) + b (b: [O], optional)
void deconv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                      const Deconv2dParams& p);
void deconv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Deconv2dParams& p);
// dw (and db when defined) from the input and the output gradient.
void deconv2d_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,
                               const Deconv2dParams& p);

// ---- upsampling of NCHW planes (torch.nn.functional.interpolate) ----
// The output size is y's; the source coordinate of output index o along an axis of input size
// `in` and output size `out` uses scale = 1 / scale_factor when the scale factor is given (> 0),
// else in / out, as PyTorch:
//   nearest:  src = min(floor(o * scale), in - 1)            (PyTorch's 'nearest')
//   bilinear: align_corners: src = o * (in - 1) / (out - 1)  (0 when out == 1)
//             else:          src = max((o + 0.5) * scale - 0.5, 0)
enum class UpsampleMode : std::uint8_t { nearest, bilinear };
struct UpsampleParams {
  UpsampleMode mode = UpsampleMode::nearest;
  bool align_corners = false;      // bilinear only
  float scale_h = 0, scale_w = 0;  // the scale factors given (output / input); 0: from the sizes
};
void upsample2d_forward(const Tensor& x, Tensor& y, const UpsampleParams& p);
void upsample2d_backward(const Tensor& dy, Tensor& dx, const UpsampleParams& p);

// ---- batch norm over N (and H, W), per channel C; x is [N, C] or [N, C, H, W] ----
struct BatchNormParams {
  float eps = 1e-5f;
  float momentum = 0.1f;    // running = (1 - momentum) * running + momentum * batch
  bool fused_relu = false;  // forward: y = max(0, y) in the same pass, as Conv2dParams' (CPU only)
};
// Normalises with the batch statistics, stores them (mean, biased variance) for backward, and
// updates the running mean and the running unbiased variance, as torch.nn.BatchNorm2d.
void batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                 Tensor& y, Tensor& running_mean, Tensor& running_var,
                                 Tensor& save_mean, Tensor& save_var, const BatchNormParams& p);
// Normalises with the running statistics.
void batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  const Tensor& running_mean, const Tensor& running_var, Tensor& y,
                                  const BatchNormParams& p);
void batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                         const Tensor& save_mean, const Tensor& save_var, Tensor& dx,
                         Tensor& dgamma, Tensor& dbeta, const BatchNormParams& p);

// ---- synchronized batch norm (--sync-bn): the statistics of the global batch of all ranks ----
// The pieces between which the caller sums a per-channel buffer over the ranks (all-reduce):
//   forward:  batch_norm_local_stats -> sum `stats` -> batch_norm_stats_to_moments ->
//             batch_norm_forward_inference(x, gamma, beta, save_mean, save_var, y)
//   backward: batch_norm_backward_reduce -> sum `sums` -> batch_norm_backward_apply
// Without the sums (one rank) they compute what batch_norm_forward_training and
// batch_norm_backward compute. Counts travel in the buffers, so ranks may hold unequal batches.
//
// stats: f32 [2C + 1]: per channel the sum of x, then per channel the sum of x^2, then the number
// of values per channel (N, or N * H * W). Sums run in double and are rounded once.
void batch_norm_local_stats(const Tensor& x, Tensor& stats);
// From summed stats (n = the last entry): save_mean and save_var (the biased variance, as
// batch_norm_forward_training saves), and the running statistics updated with them (the variance
// unbiased by n / (n - 1), n the global count). Requires n > 1.
void batch_norm_stats_to_moments(const Tensor& stats, Tensor& running_mean, Tensor& running_var,
                                 Tensor& save_mean, Tensor& save_var, const BatchNormParams& p);
// sums: f32 [2C + 1]: per channel sum(dy), then per channel sum(dy * x_hat) with
// x_hat = (x - save_mean) / sqrt(save_var + eps), then the number of values per channel.
// dbeta = sum(dy) and dgamma = sum(dy * x_hat) of this x are written too where defined.
void batch_norm_backward_reduce(const Tensor& dy, const Tensor& x, const Tensor& save_mean,
                                const Tensor& save_var, Tensor& sums, Tensor& dgamma, Tensor& dbeta,
                                const BatchNormParams& p);
// From summed `sums` (n = the last entry):
//   dx = gamma / sqrt(save_var + eps) * (dy - sum(dy) / n - x_hat * sum(dy * x_hat) / n)
// (gamma undefined: 1), the gradient of a normalisation whose statistics came from all n values.
void batch_norm_backward_apply(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                               const Tensor& save_mean, const Tensor& save_var, const Tensor& sums,
                               Tensor& dx, const BatchNormParams& p);

// ---- fully connected: x [N, in], w [out, in], b [out], y [N, out] ----
void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y);
void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx);
void linear_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db);

// ---- pooling, NCHW ----
struct Pool2dParams {
  int kernel_h = 2, kernel_w = 2;
  int stride_h = 2, stride_w = 2;
  int pad_h = 0, pad_w = 0;
  bool ceil_mode = false;         // output size rounded up (Caffe's convention) or down (PyTorch)
  bool count_include_pad = true;  // average pooling: divide by the full window (PyTorch default)
};
Shape pool2d_output_shape(const Shape& x, const Pool2dParams& p);
// indices: i32, shaped (and laid out) as y; the argmax's position h * W + w within its input
// plane (PyTorch's).
void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dParams& p);
void max_pool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx,
                         const Pool2dParams& p);
void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dParams& p);
void avg_pool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dParams& p);
// Whether the CPU's average pooling takes blocked tensors for input x with p (oneDNN's; not where
// ceil_mode's extra right cells would be counted as padding: those run on plain NCHW loops).
bool avg_pool2d_takes_blocked(const Shape& x, const Pool2dParams& p);
// x [N, C, H, W] -> y [N, C, 1, 1]
void global_avg_pool_forward(const Tensor& x, Tensor& y);
void global_avg_pool_backward(const Tensor& dy, Tensor& dx);

// ---- element-wise activations; backward reads the output y, so they may run in place ----
enum class Activation : std::uint8_t { relu, leaky_relu, sigmoid, tanh };
// alpha: the negative slope of leaky_relu; unused otherwise.
void activation_forward(Activation kind, float alpha, const Tensor& x, Tensor& y);
void activation_backward(Activation kind, float alpha, const Tensor& y, const Tensor& dy,
                         Tensor& dx);
// y = 1 where x > 0, value_at_zero where x == 0, 0 elsewhere (torch.heaviside); no gradient.
void heaviside_forward(const Tensor& x, Tensor& y, float value_at_zero);

// ---- softmax over dim 1 of [N, C] ----
void softmax_forward(const Tensor& x, Tensor& y);
void softmax_backward(const Tensor& y, const Tensor& dy, Tensor& dx);

// ---- softmax over one axis of any shape: x read as [outer, C, inner] with C = x.size(axis) ----
// (torch.softmax(x, dim=axis); Caffe's Softmax with softmax_param { axis }).
void softmax_axis_forward(const Tensor& x, Tensor& y, int axis);
void softmax_axis_backward(const Tensor& y, const Tensor& dy, Tensor& dx, int axis);

// ---- local response normalisation of [N, C, H, W] ----
//   scale = k + alpha / n * sum of x^2 over the window,  y = x * scale^-beta
// across_channels: the window is channels c - size/2 .. c + (size - 1)/2 of the same pixel, n =
//   size (torch.nn.LocalResponseNorm; Caffe's ACROSS_CHANNELS for odd sizes, its only ones).
// within_channel: the window is the size x size square of the same channel starting (size - 1)/2
//   rows and columns before the pixel, n = size^2 (Caffe's WITHIN_CHANNEL, which fixes k = 1).
// Values outside the tensor count as zeros (and still count in n). scale is kept for backward.
enum class LrnRegion : std::uint8_t { across_channels, within_channel };
struct LrnParams {
  LrnRegion region = LrnRegion::across_channels;
  int size = 5;
  float alpha = 1e-4f, beta = 0.75f, k = 1.0f;
};
void lrn_forward(const Tensor& x, Tensor& y, Tensor& scale, const LrnParams& p);
// dx_i = dy_i scale_i^-beta - 2 alpha beta / n * x_i * sum over windows j holding i of
// dy_j y_j / scale_j.
void lrn_backward(const Tensor& x, const Tensor& y, const Tensor& scale, const Tensor& dy,
                  Tensor& dx, const LrnParams& p);

// ---- a block along one axis (Concat and its gradient); every other dim of part and whole equal
// ---- whole[..., offset : offset + part.size(axis), ...] = part
void copy_into_axis(const Tensor& part, Tensor& whole, int axis, std::int64_t offset);
// part = whole[..., offset : offset + part.size(axis), ...]
void copy_from_axis(const Tensor& whole, Tensor& part, int axis, std::int64_t offset);

// ---- per-channel scale and shift (Caffe's Scale): x read as [outer, S, inner], where scale's
// shape equals x's dims axis .. axis + scale.ndim - 1 and S = scale.numel() ----
// y = x * scale[s] + bias[s] (bias optional).
void channel_scale_forward(const Tensor& x, const Tensor& scale, const Tensor& bias, Tensor& y,
                           int axis);
// Each where defined: dx = dy * scale, dscale = sum over outer and inner of dy * x, dbias = sum dy.
void channel_scale_backward(const Tensor& x, const Tensor& scale, const Tensor& dy, Tensor& dx,
                            Tensor& dscale, Tensor& dbias, int axis);

// ---- y = (shift + scale * x)^power (Caffe's Power) ----
struct PowerParams {
  float power = 1.0f, scale = 1.0f, shift = 0.0f;
};
void power_forward(const Tensor& x, Tensor& y, const PowerParams& p);
// dx = dy * power * scale * (shift + scale * x)^(power - 1)  (0 for power 0)
void power_backward(const Tensor& x, const Tensor& dy, Tensor& dx, const PowerParams& p);

// ---- dropout (inverted: kept values scaled by 1 / (1 - p)) ----
// mask: u8 shaped as x, 1 = kept. Element i keeps when uniform(stream, i) >= p, so the same
// stream gives the same mask on every device.
void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, float p, const RngStream& stream);
void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, float p);

// ---- arithmetic ----
void add(const Tensor& a, const Tensor& b, Tensor& y);  // y = a + b (a residual join)
void axpy(float alpha, const Tensor& x, Tensor& y);     // y += alpha * x
void scale(float alpha, Tensor& x);                     // x *= alpha
void mul(const Tensor& a, const Tensor& b, Tensor& y);  // y = a * b (Eltwise PROD)
// Eltwise MAX, one bottom at a time: where x > y, y = x and mask = index (mask f32, y's shape);
// a tie keeps the earlier bottom. Backward: dx = dy where mask == index, else 0.
void max_into(const Tensor& x, float index, Tensor& y, Tensor& mask);
void max_backward(const Tensor& mask, float index, const Tensor& dy, Tensor& dx);

// ---- optimizer, gradient statistics, casts ----
// The fused update (ops/optimizer_update.h) of every range of step.ranges, on the params' device:
// one pass (one kernel) over the flat buffers. slot0 / slot1 as uses_slot0 / uses_slot1 say
// (undefined where unused). LARS trust ratios come from per-range norms in double computed on the
// params' device (deterministic). Allocates nothing after the first call with the same ranges.
void optimizer_update(const OptimizerStep& step, Tensor& params, const Tensor& grads, Tensor& slot0,
                      Tensor& slot1);
// Over elements [0, count) of x (f32, contiguous), into out (i64 [2] on x's device, two doubles
// stored as their bits, since tensors have no f64): the sum of x^2 accumulated in double, and the
// count of NaN or Inf elements. Queued: the host reads out with the step's other values
// (SumSquaresFinite::of). Deterministic: on the CPU for a given thread count, on CUDA always (a
// fixed tree).
void sum_squares_finite(const Tensor& x, std::int64_t count, Tensor& out);
struct SumSquaresFinite {
  double sum_squares = 0;  // sum of x^2, accumulated in double
  bool finite = true;      // false when any element is NaN or Inf
  // sum_squares_finite's out, read back to the host.
  static SumSquaresFinite of(const Tensor& host_out);
  // sum_squares_finite, waiting for the device.
  static SumSquaresFinite now(const Tensor& x, std::int64_t count);
};
// y = x in y's dtype (f32, bf16, f16; same shape): round to nearest even, overflow to inf, NaN
// stays NaN (its payload may not); widening is exact.
void cast(const Tensor& x, Tensor& y);

// ---- a training step's tallies (ops/step_tallies.h), queued: no wait for the device ----
// Top-1 hits of rows [0, n) of probs [N, C] (f32) against labels (i32 [N]) into out (f32 [2] on
// probs' device): {rows whose argmax_row is their label, rows counted}. Rows labelled `ignored`
// (CrossEntropyParams::ignored()) are not counted.
void top1_hits(const Tensor& probs, const Tensor& labels, std::int64_t n, std::int64_t ignored,
               Tensor& out);
// Errors of rows [0, n) of prediction against target (f32, the same shape, N rows) into out
// (f32 [3] on prediction's device): the sums over rows of row_errors' {hits, squared, absolute};
// sigmoid: prediction holds logits.
void regression_errors(const Tensor& prediction, const Tensor& target, std::int64_t n, bool sigmoid,
                       Tensor& out);

// ---- layouts (engine/tensor/layout.h) ----
// y = x in y's layout (same shape and dtype), or a copy: plain <-> nChw8c / nChw16c / nhwc on a
// CPU (f32), plain <-> nhwc on CUDA.
void reorder(const Tensor& x, Tensor& y);
// The blocked layout oneDNN's convolutions pick for their activations on this CPU (nChw16c with
// AVX-512, nChw8c with AVX2; format_tag::any, asked once); plain when they pick none.
Layout cpu_blocked_layout();
// The layout a net on `device` computing in `compute` plans its convolution chains in: the CPU's
// blocked one for f32 (plain on the reference path), nhwc for bf16 / f16 on CUDA (cuDNN's
// tensor-core kernels read and write NHWC; NCHW costs them a transpose each way), else plain.
Layout planned_layout(const Device& device, DType compute);
// Whether the op named `op` (as in ops/op_table.h) takes blocked tensors: the layers ask it, so
// what a layer lets the layout plan do follows what its ops can do.
bool takes_blocked(std::string_view op);

// ---- losses; loss is a one-element f32 tensor; backward multiplies by dloss ----
struct CrossEntropyParams {
  float label_smoothing = 0.0f;
  Tensor class_weights;  // optional f32 [C]; the mean then divides by the targets' weight sum
  // A label that counts for nothing (PyTorch's ignore_index, Caffe's ignore_label): its rows get
  // no loss and no gradient and leave the divisor. Every row ignored: loss 0 and gradient 0, as
  // Caffe's divisor max(1, count) gives (PyTorch's 0/0 would stop a run as a NaN).
  std::optional<std::int32_t> ignore_label;
  // ignore_label as a number no i32 label equals when there is none: one compare per row.
  std::int64_t ignored() const { return ignore_label ? *ignore_label : INT64_MIN; }
  // Optional i64 [1] on the logits' device. Where checking the labels would make the host wait
  // for the device (CUDA), the forward writes the first bad row here instead of throwing, as
  // bad_label_code(row, label), or kNoBadLabel; the caller reads it with the step's other values
  // and throws bad_label_message. The CPU forward checks at once and throws.
  Tensor label_check;
};
// No bad label: all ones, above every bad_label_code compared as unsigned (as the device does).
constexpr std::int64_t kNoBadLabel = -1;
// A bad label and its row in one integer whose unsigned order is the rows': the least over rows is
// the first bad row (rows < 2^31).
constexpr std::int64_t bad_label_code(std::int64_t row, std::int32_t label) {
  return row << 32 | static_cast<std::uint32_t>(label);
}
// What the forward throws for a bad label's code (op: the op or layer named first).
std::string bad_label_message(std::string_view op, std::int64_t code, std::int64_t classes);
// logits [N, C], labels i32 [N] (in [0, C) or ignore_label); probs [N, C] keeps the softmax of
// every row for backward. Mean over the rows not ignored.
void softmax_cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs,
                                   Tensor& loss, const CrossEntropyParams& p);
void softmax_cross_entropy_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits,
                                    float dloss, const CrossEntropyParams& p);
// loss = mean((pred - target)^2)
void mse_forward(const Tensor& pred, const Tensor& target, Tensor& loss);
void mse_backward(const Tensor& pred, const Tensor& target, Tensor& dpred, float dloss);
// Element-wise losses against a float target of pred's shape, mean over every element (PyTorch's
// reduction 'mean'; sums in double), d = pred - target:
//   l1          |d|                                              torch.nn.L1Loss
//   smooth_l1   0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta   torch.nn.SmoothL1Loss
//   bce_logits  max(z, 0) - z t + log1p(exp(-|z|)), z = pred the logits, t in [0, 1]
//                                                                torch.nn.BCEWithLogitsLoss
// Gradients: sign(d) (0 at 0), d / beta or sign(d), sigmoid(z) - t; each / count * dloss.
enum class PointwiseLoss { l1, smooth_l1, bce_logits };
struct PointwiseLossParams {
  PointwiseLoss kind = PointwiseLoss::l1;
  float beta = 1.0f;  // smooth_l1 only; > 0
};
void pointwise_loss_forward(const PointwiseLossParams& p, const Tensor& pred, const Tensor& target,
                            Tensor& loss);
void pointwise_loss_backward(const PointwiseLossParams& p, const Tensor& pred, const Tensor& target,
                             Tensor& dpred, float dloss);

// ---- weight penalties: loss = coeff * sum|w| (L1), coeff / 2 * sum w^2 (L2) ----
void l1_penalty_forward(const Tensor& w, float coeff, Tensor& loss);
void l1_penalty_backward(const Tensor& w, float coeff, Tensor& dw);  // adds coeff * sign(w) to dw
void l2_penalty_forward(const Tensor& w, float coeff, Tensor& loss);
void l2_penalty_backward(const Tensor& w, float coeff, Tensor& dw);  // adds coeff * w to dw

}  // namespace ruche::ops
