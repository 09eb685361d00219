// What convolution and transposed convolution (ops/cpu/conv.cc, deconv.cc) share on oneDNN: the
// descriptors an op is built from, its cached primitives with the layout bridges to our NCHW
// tensors, and running them. The two differ only in the primitive kinds (Kind below) and in how
// their descriptors are made (weight layout, right padding), which each file keeps.
//
// Primitives are created with format_tag::any, so oneDNN picks its fastest (usually blocked)
// layouts; our tensors (plain, or in the blocked layout the CPU net planned) are reordered in and
// out through buffers owned by the cache entry where their layout is not the one picked.
// Internal to ops/cpu.
#pragma once

#include "engine/tensor/tensor.h"
#include "ops/cpu/dnnl_context.h"

namespace ruche::ops::cpu::conv_family {

using dnnl::memory;

// "any" layouts for oneDNN to choose, and the layouts of our tensors (weights always plain).
struct Descs {
  memory::desc x_any, w_any, y_any, b_plain;
  memory::desc x_ours, w_ours, y_ours;
  memory::dims strides, dilates, pad_l, pad_r;
};

struct Forward {
  Primitive primitive;
  LayoutBridge x, w, y;
  memory b;
};

struct BackwardData {
  Primitive primitive;
  LayoutBridge dy, w, dx;
};

struct BackwardWeights {
  Primitive primitive;
  LayoutBridge x, dy, dw;
  memory db;
};

// The oneDNN primitive kinds of one member of the family.
struct Convolution {
  using Fwd = dnnl::convolution_forward;
  using BwdData = dnnl::convolution_backward_data;
  using BwdWeights = dnnl::convolution_backward_weights;
  static constexpr dnnl::algorithm kAlgorithm = dnnl::algorithm::convolution_direct;
};
struct Deconvolution {
  using Fwd = dnnl::deconvolution_forward;
  using BwdData = dnnl::deconvolution_backward_data;
  using BwdWeights = dnnl::deconvolution_backward_weights;
  static constexpr dnnl::algorithm kAlgorithm = dnnl::algorithm::deconvolution_direct;
};

// The forward primitive_desc, also the hint every backward primitive needs (without the ReLU).
// relu: y = max(0, y) as a post-op, in the convolution's own pass over y.
template <typename Kind>
typename Kind::Fwd::primitive_desc forward_pd(const Descs& d, bool bias, bool relu = false) {
  const auto training = dnnl::prop_kind::forward_training;
  const auto desc =
      bias ? typename Kind::Fwd::desc(training, Kind::kAlgorithm, d.x_any, d.w_any, d.b_plain,
                                      d.y_any, d.strides, d.dilates, d.pad_l, d.pad_r)
           : typename Kind::Fwd::desc(training, Kind::kAlgorithm, d.x_any, d.w_any, d.y_any,
                                      d.strides, d.dilates, d.pad_l, d.pad_r);
  dnnl::primitive_attr attr = cached_attr();
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  return {desc, attr, dnnl_engine()};
}

template <typename Kind>
Forward forward_entry(const Descs& d, bool bias, bool relu) {
  const auto pd = forward_pd<Kind>(d, bias, relu);
  return Forward{Primitive(pd), LayoutBridge(d.x_ours, pd.src_desc(), false),
                 LayoutBridge(d.w_ours, pd.weights_desc(), false),
                 LayoutBridge(d.y_ours, pd.dst_desc(), true),
                 memory(d.b_plain, dnnl_engine(), nullptr)};
}

template <typename Kind>
BackwardData backward_data_entry(const Descs& d) {
  const typename Kind::BwdData::desc desc(Kind::kAlgorithm, d.x_any, d.w_any, d.y_any, d.strides,
                                          d.dilates, d.pad_l, d.pad_r);
  const typename Kind::BwdData::primitive_desc pd(desc, cached_attr(), dnnl_engine(),
                                                  forward_pd<Kind>(d, false));
  return BackwardData{Primitive(pd), LayoutBridge(d.y_ours, pd.diff_dst_desc(), false),
                      LayoutBridge(d.w_ours, pd.weights_desc(), false),
                      LayoutBridge(d.x_ours, pd.diff_src_desc(), true)};
}

template <typename Kind>
BackwardWeights backward_weights_entry(const Descs& d, bool bias) {
  const auto desc =
      bias ? typename Kind::BwdWeights::desc(Kind::kAlgorithm, d.x_any, d.w_any, d.b_plain, d.y_any,
                                             d.strides, d.dilates, d.pad_l, d.pad_r)
           : typename Kind::BwdWeights::desc(Kind::kAlgorithm, d.x_any, d.w_any, d.y_any, d.strides,
                                             d.dilates, d.pad_l, d.pad_r);
  const typename Kind::BwdWeights::primitive_desc pd(desc, cached_attr(), dnnl_engine(),
                                                     forward_pd<Kind>(d, bias));
  return BackwardWeights{Primitive(pd), LayoutBridge(d.x_ours, pd.src_desc(), false),
                         LayoutBridge(d.y_ours, pd.diff_dst_desc(), false),
                         LayoutBridge(d.w_ours, pd.diff_weights_desc(), true),
                         memory(d.b_plain, dnnl_engine(), nullptr)};
}

// y = op(x, w) (+ b when defined).
void run_forward(const Forward& e, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y);
// dx from dy and w.
void run_backward_data(const BackwardData& e, const Tensor& dy, const Tensor& w, Tensor& dx);
// dw (and db when defined) from x and dy.
void run_backward_weights(const BackwardWeights& e, const Tensor& x, const Tensor& dy, Tensor& dw,
                          Tensor& db);

}  // namespace ruche::ops::cpu::conv_family
