// The reorder op (plain <-> blocked through oneDNN's reorder primitive, cached per shape and
// layout pair) and the blocked layout this CPU's convolutions prefer.
#include "ops/cpu/layout.h"

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops {

Layout cpu_blocked_layout() {
  static const Layout layout = [] {
    // A typical 3x3 convolution with every layout left to oneDNN; its output's is the one
    // oneDNN wants for activations on this CPU.
    using tag = dnnl::memory::format_tag;
    const auto f32 = dnnl::memory::data_type::f32;
    const dnnl::memory::desc x({8, 64, 16, 16}, f32, tag::any), w({64, 64, 3, 3}, f32, tag::any),
        y({8, 64, 16, 16}, f32, tag::any);
    const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training,
                                               dnnl::algorithm::convolution_direct, x, w, y, {1, 1},
                                               {1, 1}, {1, 1});
    const dnnl::convolution_forward::primitive_desc pd(desc, cpu::dnnl_engine());
    for (Layout candidate : {Layout::nChw16c, Layout::nChw8c}) {
      if (pd.dst_desc() == dnnl::memory::desc({8, 64, 16, 16}, f32, cpu::format_of(candidate))) {
        return candidate;
      }
    }
    return Layout::plain;
  }();
  return layout;
}

}  // namespace ruche::ops

namespace ruche::ops::cpu {

dnnl::memory::format_tag format_of(Layout layout) {
  using tag = dnnl::memory::format_tag;
  switch (layout) {
    case Layout::plain:
      return tag::abcd;
    case Layout::nChw8c:
      return tag::aBcd8b;
    case Layout::nChw16c:
      return tag::aBcd16b;
    case Layout::nhwc:
      return tag::acdb;
  }
  RUCHE_FAIL() << "unknown layout " << static_cast<int>(layout);
}

dnnl::memory::desc tensor_desc(const Tensor& t) {
  if (t.is_plain()) return plain_desc(t);
  t.check_dtype(DType::f32, "oneDNN op");
  const dnnl::memory::dims dims(t.shape().begin(), t.shape().end());
  return {dims, dnnl::memory::data_type::f32, format_of(t.layout())};
}

void reorder(const Tensor& x, Tensor& y) {
  check_dense("reorder", "x", x);
  check_dense("reorder", "y", y);
  check_same_shape_as("reorder", "y", y, "x", x);
  if (x.layout() == y.layout()) {
    if (x.raw_data() != y.raw_data()) y.copy_from(x);
    return;
  }
  struct Entry {
    Primitive primitive;
    dnnl::memory from, to;
  };
  using Key = CacheKey<6>;
  thread_local PrimitiveCache<6, Entry> cache;
  const Shape& s = x.shape();
  const Key key{s[0],
                s[1],
                s[2],
                s[3],
                static_cast<std::int64_t>(x.layout()),
                static_cast<std::int64_t>(y.layout())};
  const Entry& e = cached(cache, key, [&] {
    const dnnl::memory from(tensor_desc(x), dnnl_engine(), nullptr);
    const dnnl::memory to(tensor_desc(y), dnnl_engine(), nullptr);
    return Entry{Primitive(dnnl::reorder::primitive_desc(from, to, cached_attr())), from, to};
  });
  e.from.set_data_handle(x.raw_data());
  e.to.set_data_handle(y.raw_data());
  e.primitive.run({{DNNL_ARG_FROM, e.from.get()}, {DNNL_ARG_TO, e.to.get()}});
}

}  // namespace ruche::ops::cpu
