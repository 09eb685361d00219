// Pooling on oneDNN, on plain or blocked tensors (x and y in one layout). Primitives are cached
// per shape, layout and parameters like the convolutions'. oneDNN's max pooling workspace holds
// each argmax as an offset in its window (kh * KW + kw), in y's layout; ruche's indices are
// positions in the input plane (h * W + w), so a pass over the output converts them and
// max_pool2d_backward's scatter stays the same on both paths.
#include "ops/cpu/pooling_onednn.h"

#include <algorithm>
#include <array>
#include <cstdint>

#include "ops/cpu/checks.h"
#include "ops/cpu/dnnl_context.h"
#include "ops/cpu/layout.h"

namespace ruche::ops::cpu::onednn {
namespace {

using dnnl::memory;
using Key = CacheKey<14>;

// oneDNN's right padding for our output size: ceil_mode's last window may reach past the
// symmetric padding. Floor mode can leave a negative remainder; 0 gives the same size.
std::int64_t right_pad(std::int64_t in, std::int64_t out, int kernel, int stride, int pad) {
  return std::max<std::int64_t>(0, (out - 1) * stride + kernel - in - pad);
}

// Two ints per field, not memory::dims: every call builds one for its cache key, and a vector
// would be a heap allocation per call in the step (tests/train/alloc_test.cc).
struct Geometry {
  std::array<std::int64_t, 2> strides, kernel, pad_l, pad_r;
};

memory::dims dims(const std::array<std::int64_t, 2>& a) { return {a[0], a[1]}; }

Geometry geometry_of(const Shape& x, const Shape& y, const Pool2dParams& p) {
  return {{p.stride_h, p.stride_w},
          {p.kernel_h, p.kernel_w},
          {p.pad_h, p.pad_w},
          {right_pad(x[2], y[2], p.kernel_h, p.stride_h, p.pad_h),
           right_pad(x[3], y[3], p.kernel_w, p.stride_w, p.pad_w)}};
}

Key make_key(const Tensor& t, const Geometry& g, dnnl::algorithm algorithm) {
  const Shape& x = t.shape();
  return {x[0],
          x[1],
          x[2],
          x[3],
          g.kernel[0],
          g.kernel[1],
          g.strides[0],
          g.strides[1],
          g.pad_l[0],
          g.pad_l[1],
          g.pad_r[0],
          g.pad_r[1],
          static_cast<std::int64_t>(algorithm),
          static_cast<std::int64_t>(t.layout())};
}

// Without padding, counting the padding cells is counting the cells in the input.
bool includes_padding(const Pool2dParams& p) {
  return p.count_include_pad && (p.pad_h > 0 || p.pad_w > 0);
}

dnnl::algorithm avg_algorithm(const Pool2dParams& p) {
  return includes_padding(p) ? dnnl::algorithm::pooling_avg_include_padding
                             : dnnl::algorithm::pooling_avg_exclude_padding;
}

dnnl::pooling_forward::primitive_desc forward_pd(dnnl::algorithm algorithm, const Tensor& x,
                                                 const Tensor& y, const Geometry& g) {
  const dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_training, algorithm,
                                         tensor_desc(x), tensor_desc(y), dims(g.strides),
                                         dims(g.kernel), dims(g.pad_l), dims(g.pad_r));
  return {desc, cached_attr(), dnnl_engine()};
}

// A primitive and memory objects for its tensors (handles set per call); the workspace is the
// entry's own, read back right after the primitive ran.
struct Entry {
  Primitive primitive;
  memory from, to, workspace;
};

memory unbound(const memory::desc& desc) { return memory(desc, dnnl_engine(), nullptr); }

// indices[o] = the input-plane position of the window offset workspace[o]; both laid out as y:
// [N * C / block][OH][OW][block] (block 1: plain).
template <typename Offset>
void offsets_to_indices(const Offset* workspace, std::int32_t* indices, const Tensor& x,
                        const Tensor& y, const Pool2dParams& p) {
  const std::int64_t block = channel_block(y.layout(), y.size(1));
  const std::int64_t planes = y.size(0) * y.size(1) / block, OH = y.size(2), OW = y.size(3);
  const std::int64_t W = x.size(3);
#pragma omp parallel for if (y.numel() >= kParallelMin)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      const std::int64_t h0 = oh * p.stride_h - p.pad_h;
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const std::int64_t w0 = ow * p.stride_w - p.pad_w;
        const std::int64_t o = ((plane * OH + oh) * OW + ow) * block;
        for (std::int64_t c = 0; c < block; ++c) {
          const std::int64_t k = workspace[o + c];
          indices[o + c] =
              static_cast<std::int32_t>((h0 + k / p.kernel_w) * W + w0 + k % p.kernel_w);
        }
      }
    }
  }
}

}  // namespace

bool avg_pool_fits(const Shape& x, const Shape& y, const Pool2dParams& p) {
  const Geometry g = geometry_of(x, y, p);
  return !includes_padding(p) || (g.pad_r[0] <= p.pad_h && g.pad_r[1] <= p.pad_w);
}

void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dParams& p) {
  const Geometry g = geometry_of(x.shape(), y.shape(), p);
  thread_local PrimitiveCache<14, Entry> cache;
  const auto algorithm = dnnl::algorithm::pooling_max;
  const Entry& e = cached(cache, make_key(x, g, algorithm), [&] {
    const auto pd = forward_pd(algorithm, x, y, g);
    return Entry{Primitive(pd), unbound(pd.src_desc()), unbound(pd.dst_desc()),
                 memory(pd.workspace_desc(), dnnl_engine())};
  });
  e.from.set_data_handle(x.raw_data());
  e.to.set_data_handle(y.raw_data());
  e.primitive.run({{DNNL_ARG_SRC, e.from.get()},
                   {DNNL_ARG_DST, e.to.get()},
                   {DNNL_ARG_WORKSPACE, e.workspace.get()}});
  std::int32_t* out = indices.data<std::int32_t>();
  const void* workspace = e.workspace.get_data_handle();
  if (e.workspace.get_desc().data_type() == memory::data_type::u8) {
    offsets_to_indices(static_cast<const std::uint8_t*>(workspace), out, x, y, p);
  } else {
    offsets_to_indices(static_cast<const std::int32_t*>(workspace), out, x, y, p);
  }
}

void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dParams& p) {
  const Geometry g = geometry_of(x.shape(), y.shape(), p);
  thread_local PrimitiveCache<14, Entry> cache;
  const Entry& e = cached(cache, make_key(x, g, avg_algorithm(p)), [&] {
    const auto pd = forward_pd(avg_algorithm(p), x, y, g);
    return Entry{Primitive(pd), unbound(pd.src_desc()), unbound(pd.dst_desc()), memory()};
  });
  e.from.set_data_handle(x.raw_data());
  e.to.set_data_handle(y.raw_data());
  e.primitive.run({{DNNL_ARG_SRC, e.from.get()}, {DNNL_ARG_DST, e.to.get()}});
}

void avg_pool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dParams& p) {
  const Geometry g = geometry_of(dx.shape(), dy.shape(), p);
  thread_local PrimitiveCache<14, Entry> cache;
  const Entry& e = cached(cache, make_key(dx, g, avg_algorithm(p)), [&] {
    const dnnl::pooling_backward::desc desc(avg_algorithm(p), tensor_desc(dx), tensor_desc(dy),
                                            dims(g.strides), dims(g.kernel), dims(g.pad_l),
                                            dims(g.pad_r));
    const dnnl::pooling_backward::primitive_desc pd(desc, cached_attr(), dnnl_engine(),
                                                    forward_pd(avg_algorithm(p), dx, dy, g));
    return Entry{Primitive(pd), unbound(pd.diff_dst_desc()), unbound(pd.diff_src_desc()), memory()};
  });
  e.from.set_data_handle(dy.raw_data());
  e.to.set_data_handle(dx.raw_data());
  e.primitive.run({{DNNL_ARG_DIFF_DST, e.from.get()}, {DNNL_ARG_DIFF_SRC, e.to.get()}});
}

}  // namespace ruche::ops::cpu::onednn
