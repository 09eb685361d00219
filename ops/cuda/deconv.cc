// 2-d transposed convolution on cuDNN: the transpose of conv.cc's convolution with the same weight
// (PyTorch's [C_in, C_out/groups, KH, KW] is the OIHW weight of the convolution from the deconv's
// output back to its input). Forward is cuDNN's backward data, backward data is cuDNN's forward,
// backward weights is cuDNN's backward filter with the two activations swapped; conv.cc's plan
// cache, algorithm choice and math settings apply. The bias and its gradient are conv_bias.cu's
// kernels. output_padding must be smaller than the stride here (cuDNN pads symmetrically; the
// extra rows are the ones floor division leaves over).
#include "ops/cuda/conv_bias.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/kernel_util.h"
#include "ops/op_checks.h"

namespace ruche::ops::gpu {
namespace {

constexpr TensorCheck kCheck = [](const char* op, const char* name, const Tensor& t,
                                  const Tensor& x) { check_arg(t, op, name, x.dtype()); };

void check_deconv(const char* op, const Tensor& x, const char* x_name, const Tensor& w,
                  const char* w_name, const Tensor& y, const char* y_name, const Tensor& b,
                  const char* b_name, const Deconv2dParams& p) {
  RUCHE_REQUIRE(x.defined()) << op << ": " << x_name << " is undefined";
  RUCHE_REQUIRE(x.dtype() == DType::f32 || x.dtype() == DType::bf16 || x.dtype() == DType::f16)
      << op << ": " << x_name << " must be f32, bf16 or f16, got " << x.str();
  check_deconv2d_args(op, x, x_name, w, w_name, y, y_name, b, b_name, p, kCheck);
  RUCHE_REQUIRE(p.output_padding_h < p.stride_h && p.output_padding_w < p.stride_w)
      << op << ": output padding " << p.output_padding_h << "x" << p.output_padding_w
      << " not smaller than the stride " << p.stride_h << "x" << p.stride_w
      << " is not supported on CUDA";
}

}  // namespace

void deconv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                      const Deconv2dParams& p) {
  check_deconv("deconv2d_forward", x, "x", w, "w", y, "y", b, "b", p);
  RUCHE_REQUIRE(!p.fused_relu)
      << "deconv2d_forward: a fused ReLU is a CPU net's fusion; run the ReLU";
  gpu::conv2d_backward_data(x, w, y, p);
  if (b.defined()) {
    add_channel_bias(y.dtype(), y.raw_data(), b.raw_data(), y.size(0), y.size(1),
                     y.size(2) * y.size(3), /*channels_last=*/false, current_stream());
  }
}

void deconv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                            const Deconv2dParams& p) {
  check_deconv("deconv2d_backward_data", dx, "dx", w, "w", dy, "dy", Tensor(), "", p);
  gpu::conv2d_forward(dy, w, Tensor(), dx, p);
}

void deconv2d_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,
                               const Deconv2dParams& p) {
  check_deconv("deconv2d_backward_weights", x, "x", dw, "dw", dy, "dy", db, "db", p);
  Tensor no_bias;
  gpu::conv2d_backward_weights(dy, x, dw, no_bias, p);
  if (db.defined()) {
    channel_bias_gradient(dy.dtype(), dy.raw_data(), db.raw_data(), dy.size(0), dy.size(1),
                          dy.size(2) * dy.size(3), /*channels_last=*/false, current_stream());
  }
}

}  // namespace ruche::ops::gpu
