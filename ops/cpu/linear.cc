// Fully connected layers on oneDNN matmul: y = x w^T + b, with x [N, in], w [out, in], b [out].
// Transposes are free: a transposed operand is the same memory described with the "ba" tag.
#include <algorithm>
#include <cstdint>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/dnnl_context.h"
#include "ops/op_checks.h"

namespace ruche::ops::cpu {
namespace {

using dnnl::memory;
using Key = CacheKey<4>;

// The CPU's per-tensor check; ops/op_checks.h does the shapes.
constexpr TensorCheck kCheck = [](const char* op, const char* name, const Tensor& t,
                                  const Tensor&) { check_dense(op, name, t); };

// c = a b for a [m, k], b [k, n]; each operand's memory is row-major in the given tag.
struct Matmul {
  Primitive matmul;
  memory a, b, c, bias;
};

Matmul make_matmul(memory::dim m, memory::dim k, memory::dim n, memory::format_tag a_tag,
                   memory::format_tag b_tag, bool bias) {
  const auto f32 = memory::data_type::f32;
  const memory::desc a({m, k}, f32, a_tag), b({k, n}, f32, b_tag),
      c({m, n}, f32, memory::format_tag::ab);
  const memory::desc bias_desc({1, n}, f32, memory::format_tag::ab);
  const auto desc = bias ? dnnl::matmul::desc(a, b, bias_desc, c) : dnnl::matmul::desc(a, b, c);
  const dnnl::matmul::primitive_desc pd(desc, cached_attr(), dnnl_engine());
  return {Primitive(pd), memory(a, dnnl_engine(), nullptr), memory(b, dnnl_engine(), nullptr),
          memory(c, dnnl_engine(), nullptr), memory(bias_desc, dnnl_engine(), nullptr)};
}

void run(const Matmul& e, const Tensor& a, const Tensor& b, const Tensor& bias, Tensor& c) {
  e.a.set_data_handle(a.raw_data());
  e.b.set_data_handle(b.raw_data());
  e.c.set_data_handle(c.raw_data());
  if (bias.defined()) {
    e.bias.set_data_handle(bias.raw_data());
    e.matmul.run({{DNNL_ARG_SRC, e.a.get()},
                  {DNNL_ARG_WEIGHTS, e.b.get()},
                  {DNNL_ARG_BIAS, e.bias.get()},
                  {DNNL_ARG_DST, e.c.get()}});
  } else {
    e.matmul.run(
        {{DNNL_ARG_SRC, e.a.get()}, {DNNL_ARG_WEIGHTS, e.b.get()}, {DNNL_ARG_DST, e.c.get()}});
  }
}

}  // namespace

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  ops::check_linear_args("linear_forward", x, "x", w, "w", y, "y", b, "b", kCheck);
  const std::int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  thread_local PrimitiveCache<4, Matmul> cache;
  const Matmul& e = cached(cache, Key{n, in, out, b.defined() ? 1 : 0}, [&] {
    return make_matmul(n, in, out, memory::format_tag::ab, memory::format_tag::ba, b.defined());
  });
  run(e, x, w, b, y);  // [N, in] x [in, out], w read transposed
}

void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) {
  ops::check_linear_args("linear_backward_data", dx, "dx", w, "w", dy, "dy", Tensor(), "", kCheck);
  const std::int64_t n = dx.size(0), in = dx.size(1), out = w.size(0);
  thread_local PrimitiveCache<4, Matmul> cache;
  const Matmul& e = cached(cache, Key{n, in, out, 0}, [&] {
    return make_matmul(n, out, in, memory::format_tag::ab, memory::format_tag::ab, false);
  });
  run(e, dy, w, Tensor(), dx);  // [N, out] x [out, in]
}

void linear_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db) {
  ops::check_linear_args("linear_backward_weights", x, "x", dw, "dw", dy, "dy", db, "db", kCheck);
  const std::int64_t n = x.size(0), in = x.size(1), out = dw.size(0);
  thread_local PrimitiveCache<4, Matmul> cache;
  const Matmul& e = cached(cache, Key{n, in, out, 0}, [&] {
    return make_matmul(out, n, in, memory::format_tag::ba, memory::format_tag::ab, false);
  });
  run(e, dy, x, Tensor(), dw);  // [out, N] x [N, in], dy read transposed
  if (!db.defined()) return;
  // db = column sums of dy; rows in order, so the result does not depend on the thread count.
  const float* g = dy.data<float>();
  float* d = db.data<float>();
  std::fill(d, d + out, 0.0f);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t o = 0; o < out; ++o) d[o] += g[i * out + o];
  }
}

}  // namespace ruche::ops::cpu
