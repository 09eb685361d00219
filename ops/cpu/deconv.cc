// 2-d transposed convolution on oneDNN's deconvolution primitives: forward, backward data,
// backward weights (and bias). Weights are PyTorch's [C_in, C_out/groups, KH, KW] (oneDNN's iohw
// and giohw formats over the same memory). output_padding is oneDNN's right padding made smaller:
// pad_r = pad - output_padding (oneDNN admits pad_r > -stride).
//
// As ops/cpu/conv.cc: one cache of primitives per op keyed by shapes and parameters, created with
// format_tag::any and bridged to our NCHW tensors by reorders into buffers the entry owns.
#include <cstdint>

#include "ops/cpu/checks.h"
#include "ops/cpu/conv_family.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/dnnl_context.h"
#include "ops/op_checks.h"

namespace ruche::ops {

Shape deconv2d_output_shape(const Shape& x, const Shape& w, const Deconv2dParams& p) {
  RUCHE_REQUIRE(x.ndim() == 4) << "deconv2d: input must be [N, C, H, W], got " << x.str();
  RUCHE_REQUIRE(w.ndim() == 4) << "deconv2d: weight must be [C, O/groups, KH, KW], got " << w.str();
  RUCHE_REQUIRE(p.groups >= 1 && p.stride_h >= 1 && p.stride_w >= 1 && p.dilation_h >= 1 &&
                p.dilation_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0 && p.output_padding_h >= 0 &&
                p.output_padding_w >= 0)
      << "deconv2d: groups, stride and dilation must be >= 1 and padding and output padding >= 0 "
      << "(groups " << p.groups << ", stride " << p.stride_h << "x" << p.stride_w << ", dilation "
      << p.dilation_h << "x" << p.dilation_w << ", padding " << p.pad_h << "x" << p.pad_w
      << ", output padding " << p.output_padding_h << "x" << p.output_padding_w << ")";
  RUCHE_REQUIRE((p.output_padding_h < p.stride_h || p.output_padding_h < p.dilation_h) &&
                (p.output_padding_w < p.stride_w || p.output_padding_w < p.dilation_w))
      << "deconv2d: output padding " << p.output_padding_h << "x" << p.output_padding_w
      << " must be smaller than the stride " << p.stride_h << "x" << p.stride_w
      << " or the dilation " << p.dilation_h << "x" << p.dilation_w;
  RUCHE_REQUIRE(x[1] % p.groups == 0 && x[1] == w[0])
      << "deconv2d: input has " << x[1] << " channels but weight " << w.str() << " with groups "
      << p.groups << " expects " << w[0] << " (a multiple of groups)";
  RUCHE_REQUIRE(x[0] >= 1 && x[1] >= 1 && w[1] >= 1 && x[2] >= 1 && x[3] >= 1)
      << "deconv2d: empty input " << x.str() << " or weight " << w.str();
  const std::int64_t oh =
      (x[2] - 1) * p.stride_h - 2 * p.pad_h + p.dilation_h * (w[2] - 1) + p.output_padding_h + 1;
  const std::int64_t ow =
      (x[3] - 1) * p.stride_w - 2 * p.pad_w + p.dilation_w * (w[3] - 1) + p.output_padding_w + 1;
  RUCHE_REQUIRE(oh >= 1 && ow >= 1)
      << "deconv2d: padding " << p.pad_h << "x" << p.pad_w << " leaves no output for input "
      << x.str() << " and weight " << w.str() << " (" << oh << "x" << ow << ")";
  return Shape{x[0], w[1] * p.groups, oh, ow};
}

}  // namespace ruche::ops

namespace ruche::ops::cpu {
namespace {

using namespace conv_family;
using Key = CacheKey<18>;

Key make_key(const Shape& x, const Shape& w, const Deconv2dParams& p, bool bias,
             bool relu = false) {
  return {x[0],
          x[1],
          x[2],
          x[3],
          w[0],
          w[1],
          w[2],
          w[3],
          p.stride_h,
          p.stride_w,
          p.pad_h,
          p.pad_w,
          p.dilation_h,
          p.dilation_w,
          p.groups,
          p.output_padding_h,
          p.output_padding_w,
          (bias ? 1 : 0) + (relu ? 2 : 0)};
}

Descs deconv_descs(const Shape& x, const Shape& w, const Deconv2dParams& p) {
  const Shape y = deconv2d_output_shape(x, w, p);
  const auto f32 = memory::data_type::f32;
  const auto any = memory::format_tag::any;
  const memory::dims xd(x.begin(), x.end()), yd(y.begin(), y.end());
  // oneDNN's deconvolution weights are [O, C, KH, KW] (grouped: [G, O/G, C/G, KH, KW]); ours
  // hold C outermost, then O/G: the iohw (giohw) layout of those dims.
  const memory::dims wd = p.groups == 1 ? memory::dims{w[1], w[0], w[2], w[3]}
                                        : memory::dims{p.groups, w[1], w[0] / p.groups, w[2], w[3]};
  const auto w_tag = p.groups == 1 ? memory::format_tag::iohw : memory::format_tag::giohw;
  Descs d;
  d.x_any = {xd, f32, any};
  d.w_any = {wd, f32, any};
  d.y_any = {yd, f32, any};
  d.b_plain = {{y[1]}, f32, memory::format_tag::a};
  d.x_ours = {xd, f32, memory::format_tag::nchw};
  d.w_ours = {wd, f32, w_tag};
  d.y_ours = {yd, f32, memory::format_tag::nchw};
  d.strides = {p.stride_h, p.stride_w};
  d.dilates = {p.dilation_h - 1, p.dilation_w - 1};
  d.pad_l = {p.pad_h, p.pad_w};
  d.pad_r = {p.pad_h - p.output_padding_h, p.pad_w - p.output_padding_w};
  return d;
}

constexpr TensorCheck kCheck = [](const char* op, const char* name, const Tensor& t,
                                  const Tensor&) { check_dense(op, name, t); };

}  // namespace

void deconv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                      const Deconv2dParams& p) {
  check_deconv2d_args("deconv2d_forward", x, "x", w, "w", y, "y", b, "b", p, kCheck);
  const bool relu = p.fused_relu && !cpu_reference_path();  // the reference path runs it apart
  thread_local PrimitiveCache<18, Forward> cache;
  const Forward& e = cached(cache, make_key(x.shape(), w.shape(), p, b.defined(), relu), [&] {
    return forward_entry<Deconvolution>(deconv_descs(x.shape(), w.shape(), p), b.defined(), relu);
  });
  run_forward(e, x, w, b, y);
  if (p.fused_relu && !relu) cpu::activation_forward(Activation::relu, 0.0f, y, y);
}

void deconv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                            const Deconv2dParams& p) {
  check_deconv2d_args("deconv2d_backward_data", dx, "dx", w, "w", dy, "dy", Tensor(), "", p,
                      kCheck);
  thread_local PrimitiveCache<18, BackwardData> cache;
  const BackwardData& e = cached(cache, make_key(dx.shape(), w.shape(), p, false), [&] {
    return backward_data_entry<Deconvolution>(deconv_descs(dx.shape(), w.shape(), p));
  });
  run_backward_data(e, dy, w, dx);
}

void deconv2d_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,
                               const Deconv2dParams& p) {
  check_deconv2d_args("deconv2d_backward_weights", x, "x", dw, "dw", dy, "dy", db, "db", p, kCheck);
  thread_local PrimitiveCache<18, BackwardWeights> cache;
  const BackwardWeights& e = cached(cache, make_key(x.shape(), dw.shape(), p, db.defined()), [&] {
    return backward_weights_entry<Deconvolution>(deconv_descs(x.shape(), dw.shape(), p),
                                                 db.defined());
  });
  run_backward_weights(e, x, dy, dw, db);
}

}  // namespace ruche::ops::cpu
