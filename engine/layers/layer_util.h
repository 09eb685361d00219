// Small helpers shared by the layer files: argument checks that speak the layer's name, filler
// shorthands, and the aliasing test for in-place blobs. Header-only; nothing here allocates in a
// step.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/error.h"
#include "engine/layers/layer.h"

namespace ruche::layers {

// Throws "<Type>: expected N bottom(s), got M" when the count differs.
inline void require_bottoms(std::string_view type, const std::vector<Shape>& bottoms,
                            std::size_t n) {
  RUCHE_REQUIRE(bottoms.size() == n) << type << ": expected " << n << " bottom"
                                     << (n == 1 ? "" : "s") << ", got " << bottoms.size();
}

// Throws "<Type>: expected a 4-d input [N, C, H, W], got [64, 784]" unless x has `ndim` dims.
inline void require_ndim(std::string_view type, const Shape& x, int ndim, std::string_view layout) {
  RUCHE_REQUIRE(x.ndim() == ndim) << type << ": expected a " << ndim << "-d input " << layout
                                  << ", got " << x.str();
}

// A filler drawing U(-bound, bound): torch.nn's default for conv and linear weights
// (kaiming_uniform with a = sqrt(5) reduces to bound = 1 / sqrt(fan_in)) and biases.
inline proto::FillerParameter uniform_filler(float bound) {
  proto::FillerParameter f;
  f.set_type("uniform");
  f.set_min(-bound);
  f.set_max(bound);
  return f;
}

inline proto::FillerParameter constant_filler(float value) {
  proto::FillerParameter f;
  f.set_type("constant");
  f.set_value(value);
  return f;
}

// The filler the user gave, or torch.nn's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
inline proto::FillerParameter filler_or_torch_default(bool given,
                                                      const proto::FillerParameter& filler,
                                                      std::int64_t fan_in) {
  if (given && filler.type() != "default") return filler;
  return uniform_filler(fan_in > 0 ? 1.0f / std::sqrt(static_cast<float>(fan_in)) : 0.0f);
}

// The weight and (when bias_term) the bias of a convolution or linear layer: p is its
// ConvolutionParameter or InnerProductParameter; unset fillers are torch.nn's defaults.
template <typename LayerParam>
std::vector<ParamDecl> weight_and_bias(const LayerParam& p, const Shape& weight_shape,
                                       std::int64_t out, std::int64_t fan_in,
                                       std::int64_t fan_out) {
  ParamDecl w;
  w.suffix = "weight";
  w.shape = weight_shape;
  w.role = ParamRole::weight;
  w.filler = filler_or_torch_default(p.has_weight_filler(), p.weight_filler(), fan_in);
  w.fan_in = fan_in;
  w.fan_out = fan_out;
  std::vector<ParamDecl> decls{w};
  if (p.bias_term()) {
    ParamDecl b = w;
    b.suffix = "bias";
    b.shape = Shape{out};
    b.role = ParamRole::bias;
    b.filler = filler_or_torch_default(p.has_bias_filler(), p.bias_filler(), fan_in);
    decls.push_back(b);
  }
  return decls;
}

// Whether a and b are the same elements (an in-place blob): then a copy between them is a no-op.
inline bool same_elements(const Tensor& a, const Tensor& b) {
  return a.shares_storage(b) && a.offset() == b.offset() && a.shape() == b.shape();
}

// The i-th entry of a LayerIO vector, or an undefined tensor when the Net left it out.
inline const Tensor& entry(const std::vector<Tensor>& v, std::size_t i) {
  static const Tensor kUndefined;
  return i < v.size() ? v[i] : kUndefined;
}

// A scratch tensor shaped and laid out as `like`, allocated the first time it is needed and reused
// after: for the rare gradient an op must write but nobody reads (a frozen weight beside a trained
// bias).
inline Tensor& scratch_like(Tensor& slot, const Tensor& like) {
  if (!slot.defined() || !(slot.shape() == like.shape()) || slot.device() != like.device() ||
      slot.dtype() != like.dtype() || slot.layout() != like.layout()) {
    slot = Tensor::empty(like.shape(), like.dtype(), like.device()).with_layout(like.layout());
  }
  return slot;
}

// A stable 24-bit id for a layer's random streams: FNV-1a of the name, so it does not change when
// layers are added before it.
inline std::uint32_t stream_id_of(const std::string& name) {
  std::uint32_t h = 2166136261u;
  for (const unsigned char c : name) {
    h ^= c;
    h *= 16777619u;
  }
  return h & 0xFFFFFFu;
}

// A per-dimension setting given as `both` or as separate h / w fields (Caffe's kernel_size vs
// kernel_h, kernel_w); 0 when neither is set.
struct HW {
  int h = 0, w = 0;
};
inline HW hw_of(bool has_both, std::uint32_t both, bool has_h, std::uint32_t h, bool has_w,
                std::uint32_t w, std::uint32_t fallback) {
  HW r;
  r.h = static_cast<int>(has_h ? h : (has_both ? both : fallback));
  r.w = static_cast<int>(has_w ? w : (has_both ? both : fallback));
  return r;
}

// A convolution_param's window as Caffe reads it: the kernel (0 when unset), the stride (1),
// the padding and a transposed convolution's output padding (0).
struct ConvWindow {
  HW kernel, stride, pad, output_padding;
};
inline ConvWindow conv_window(const proto::ConvolutionParameter& c) {
  return {
      hw_of(c.has_kernel_size(), c.kernel_size(), c.has_kernel_h(), c.kernel_h(), c.has_kernel_w(),
            c.kernel_w(), 0),
      hw_of(true, c.stride(), c.has_stride_h(), c.stride_h(), c.has_stride_w(), c.stride_w(), 1),
      hw_of(true, c.pad(), c.has_pad_h(), c.pad_h(), c.has_pad_w(), c.pad_w(), 0),
      hw_of(true, c.output_padding(), c.has_output_padding_h(), c.output_padding_h(),
            c.has_output_padding_w(), c.output_padding_w(), 0)};
}

// A pooling_param's window: the kernel (0 when unset), the stride (PyTorch's default, the
// kernel) and the padding (0).
struct PoolWindow {
  HW kernel, stride, pad;
};
inline PoolWindow pool_window(const proto::PoolingParameter& q) {
  const HW k = hw_of(q.has_kernel_size(), q.kernel_size(), q.has_kernel_h(), q.kernel_h(),
                     q.has_kernel_w(), q.kernel_w(), 0);
  const HW s = hw_of(q.has_stride(), q.stride(), q.has_stride_h(), q.stride_h(), q.has_stride_w(),
                     q.stride_w(), 0);
  return {k,
          {s.h > 0 ? s.h : k.h, s.w > 0 ? s.w : k.w},
          hw_of(true, q.pad(), q.has_pad_h(), q.pad_h(), q.has_pad_w(), q.pad_w(), 0)};
}

}  // namespace ruche::layers
