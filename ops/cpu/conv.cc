// 2-d convolution on oneDNN: forward, backward data, backward weights (and bias).
//
// Each op keeps a cache of primitives keyed by shapes, layouts and parameters. The primitives are
// created with format_tag::any, so oneDNN picks its fastest (usually blocked) layouts; our
// activations (NCHW, or the blocked layout the net planned) and OIHW weights are reordered in and
// out through buffers owned by the cache entry where their layout is not the one picked.
#include <cstdint>

#include "ops/cpu/checks.h"
#include "ops/cpu/conv_family.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/dnnl_context.h"
#include "ops/cpu/layout.h"
#include "ops/op_checks.h"

namespace ruche::ops {

Shape conv2d_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p) {
  RUCHE_REQUIRE(x.ndim() == 4) << "conv2d: input must be [N, C, H, W], got " << x.str();
  RUCHE_REQUIRE(w.ndim() == 4) << "conv2d: weight must be [O, C/groups, KH, KW], got " << w.str();
  RUCHE_REQUIRE(p.groups >= 1 && p.stride_h >= 1 && p.stride_w >= 1 && p.dilation_h >= 1 &&
                p.dilation_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0)
      << "conv2d: groups, stride and dilation must be >= 1 and padding >= 0 (groups " << p.groups
      << ", stride " << p.stride_h << "x" << p.stride_w << ", dilation " << p.dilation_h << "x"
      << p.dilation_w << ", padding " << p.pad_h << "x" << p.pad_w << ")";
  RUCHE_REQUIRE(w[0] % p.groups == 0) << "conv2d: weight " << w.str() << " has " << w[0]
                                      << " output channels, not divisible by groups " << p.groups;
  RUCHE_REQUIRE(x[1] == w[1] * p.groups)
      << "conv2d: input has " << x[1] << " channels but weight " << w.str() << " with groups "
      << p.groups << " expects " << w[1] * p.groups;
  const std::int64_t kh = (w[2] - 1) * p.dilation_h + 1;  // the kernel's extent with dilation
  const std::int64_t kw = (w[3] - 1) * p.dilation_w + 1;
  const std::int64_t h = x[2] + 2 * p.pad_h;
  const std::int64_t wd = x[3] + 2 * p.pad_w;
  RUCHE_REQUIRE(x[0] >= 1 && w[0] >= 1 && x[1] >= 1)
      << "conv2d: empty input " << x.str() << " or weight " << w.str();
  RUCHE_REQUIRE(kh <= h && kw <= wd)
      << "conv2d: kernel " << kh << "x" << kw << " (with dilation) does not fit the padded input "
      << h << "x" << wd << " of input " << x.str();
  return Shape{x[0], w[0], (h - kh) / p.stride_h + 1, (wd - kw) / p.stride_w + 1};
}

}  // namespace ruche::ops

namespace ruche::ops::cpu {
namespace {

using namespace conv_family;
using Key = CacheKey<18>;

// x (or dx) shape, w (or dw) shape, the parameters, the layouts of x and y (or dx and dy),
// whether a bias takes part and whether a ReLU follows in the same primitive.
Key make_key(const Tensor& x, const Shape& w, const Tensor& y, const Conv2dParams& p, bool bias,
             bool relu = false) {
  const Shape& s = x.shape();
  return {s[0],
          s[1],
          s[2],
          s[3],
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
          (bias ? 1 : 0) + (relu ? 2 : 0),
          static_cast<std::int64_t>(x.layout()),
          static_cast<std::int64_t>(y.layout())};
}

Descs conv_descs(const Tensor& xt, const Shape& w, const Tensor& yt, const Conv2dParams& p) {
  const Shape& x = xt.shape();
  const Shape y = conv2d_output_shape(x, w, p);
  const auto f32 = memory::data_type::f32;
  const auto any = memory::format_tag::any;
  const memory::dims xd(x.begin(), x.end()), yd(y.begin(), y.end());
  // Groups are a leading weight dimension in oneDNN: [G, O/G, C/G, KH, KW] over OIHW memory.
  const memory::dims wd = p.groups == 1 ? memory::dims(w.begin(), w.end())
                                        : memory::dims{p.groups, w[0] / p.groups, w[1], w[2], w[3]};
  const auto w_tag = p.groups == 1 ? memory::format_tag::oihw : memory::format_tag::goihw;
  Descs d;
  d.x_any = {xd, f32, any};
  d.w_any = {wd, f32, any};
  d.y_any = {yd, f32, any};
  d.b_plain = {{w[0]}, f32, memory::format_tag::a};
  d.x_ours = {xd, f32, format_of(xt.layout())};
  d.w_ours = {wd, f32, w_tag};
  d.y_ours = {yd, f32, format_of(yt.layout())};
  d.strides = {p.stride_h, p.stride_w};
  d.dilates = {p.dilation_h - 1, p.dilation_w - 1};  // oneDNN counts dilation from 0
  d.pad_l = {p.pad_h, p.pad_w};
  d.pad_r = {p.pad_h, p.pad_w};
  return d;
}

// The CPU's per-tensor check; ops/op_checks.h does the shapes.
constexpr TensorCheck kCheck = [](const char* op, const char* name, const Tensor& t,
                                  const Tensor&) { check_dense(op, name, t); };

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dParams& p) {
  check_conv2d_args("conv2d_forward", x, "x", w, "w", y, "y", b, "b", p, kCheck);
  const bool relu = p.fused_relu && !cpu_reference_path();  // the reference path runs it apart
  thread_local PrimitiveCache<18, Forward> cache;
  const Forward& e = cached(cache, make_key(x, w.shape(), y, p, b.defined(), relu), [&] {
    return forward_entry<Convolution>(conv_descs(x, w.shape(), y, p), b.defined(), relu);
  });
  run_forward(e, x, w, b, y);
  if (p.fused_relu && !relu) cpu::activation_forward(Activation::relu, 0.0f, y, y);
}

void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dParams& p) {
  check_conv2d_args("conv2d_backward_data", dx, "dx", w, "w", dy, "dy", Tensor(), "", p, kCheck);
  thread_local PrimitiveCache<18, BackwardData> cache;
  const BackwardData& e = cached(cache, make_key(dx, w.shape(), dy, p, false), [&] {
    return backward_data_entry<Convolution>(conv_descs(dx, w.shape(), dy, p));
  });
  run_backward_data(e, dy, w, dx);
}

void conv2d_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,
                             const Conv2dParams& p) {
  check_conv2d_args("conv2d_backward_weights", x, "x", dw, "dw", dy, "dy", db, "db", p, kCheck);
  thread_local PrimitiveCache<18, BackwardWeights> cache;
  const BackwardWeights& e = cached(cache, make_key(x, dw.shape(), dy, p, db.defined()), [&] {
    return backward_weights_entry<Convolution>(conv_descs(x, dw.shape(), dy, p), db.defined());
  });
  run_backward_weights(e, x, dy, dw, db);
}

}  // namespace ruche::ops::cpu
