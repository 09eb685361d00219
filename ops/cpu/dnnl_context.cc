#include "ops/cpu/dnnl_context.h"

#include <omp.h>

#include "ops/ops.h"

namespace ruche::ops {

void set_num_threads(int threads) {
  // oneDNN in Debian runs on OpenMP, so one setting governs both it and our loops.
  if (threads > 0) omp_set_num_threads(threads);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace ruche::ops

namespace ruche::ops::cpu {

dnnl::engine& dnnl_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& dnnl_stream() {
  static dnnl::stream stream(dnnl_engine());
  return stream;
}

dnnl::memory::desc plain_desc(const Shape& shape) {
  using tag = dnnl::memory::format_tag;
  dnnl::memory::dims dims(shape.begin(), shape.end());
  switch (shape.ndim()) {
    case 1: return {dims, dnnl::memory::data_type::f32, tag::a};
    case 2: return {dims, dnnl::memory::data_type::f32, tag::ab};
    case 3: return {dims, dnnl::memory::data_type::f32, tag::abc};
    case 4: return {dims, dnnl::memory::data_type::f32, tag::abcd};
    case 5: return {dims, dnnl::memory::data_type::f32, tag::abcde};
    default: RUCHE_FAIL() << "oneDNN: unsupported rank " << shape.ndim() << " for " << shape.str();
  }
}

dnnl::memory::desc plain_desc(const Tensor& t) {
  t.check_dtype(DType::f32, "oneDNN op");
  RUCHE_REQUIRE(t.is_contiguous()) << "oneDNN op: tensor " << t.str() << " is not contiguous";
  return plain_desc(t.shape());
}

dnnl::memory as_memory(const Tensor& t) { return as_memory(t, plain_desc(t)); }

dnnl::memory as_memory(const Tensor& t, const dnnl::memory::desc& desc) {
  return dnnl::memory(desc, dnnl_engine(), t.raw_data());
}

}  // namespace ruche::ops::cpu
