#include "ops/cpu/dnnl_context.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <string_view>

#include "ops/ops.h"

namespace ruche::ops {

void set_num_threads(int threads) {
  // oneDNN in Debian runs on OpenMP, so one setting governs both it and our loops.
  if (threads > 0) omp_set_num_threads(threads);
}

int num_threads() { return omp_get_max_threads(); }

namespace {
std::atomic<bool>& reference_path() {
  static std::atomic<bool> on = [] {
    const char* value = std::getenv("RUCHE_CPU_REFERENCE");
    return value != nullptr && std::string_view(value) == "1";
  }();
  return on;
}
}  // namespace

bool cpu_reference_path() { return reference_path().load(std::memory_order_relaxed); }

void set_cpu_reference_path(bool on) { reference_path() = on; }

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
    case 1:
      return {dims, dnnl::memory::data_type::f32, tag::a};
    case 2:
      return {dims, dnnl::memory::data_type::f32, tag::ab};
    case 3:
      return {dims, dnnl::memory::data_type::f32, tag::abc};
    case 4:
      return {dims, dnnl::memory::data_type::f32, tag::abcd};
    case 5:
      return {dims, dnnl::memory::data_type::f32, tag::abcde};
    default:
      RUCHE_FAIL() << "oneDNN: unsupported rank " << shape.ndim() << " for " << shape.str();
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

dnnl::primitive_attr cached_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

namespace {
// Primitives run one at a time, from the thread that drives the net; oneDNN's OpenMP workers
// run inside that call, so a process-wide flag covers them too.
std::atomic<bool> g_inside_onednn{false};
}  // namespace

bool inside_onednn() { return g_inside_onednn.load(std::memory_order_relaxed); }

void Primitive::run(std::span<const dnnl_exec_arg_t> args) const {
  std::array<dnnl_exec_arg_t, 16> all{};
  RUCHE_CHECK(args.size() < all.size()) << "too many oneDNN arguments";
  int n = 0;
  for (const dnnl_exec_arg_t& a : args) all[static_cast<std::size_t>(n++)] = a;
  if (scratchpad_) all[static_cast<std::size_t>(n++)] = {DNNL_ARG_SCRATCHPAD, scratchpad_.get()};
  g_inside_onednn = true;
  const dnnl_status_t status =
      dnnl_primitive_execute(primitive_.get(), dnnl_stream().get(), n, all.data());
  g_inside_onednn = false;
  RUCHE_CHECK(status == dnnl_success)
      << "oneDNN primitive failed to execute, dnnl_status_t " << static_cast<int>(status);
  dnnl_stream().wait();
}

LayoutBridge::LayoutBridge(const dnnl::memory::desc& plain, const dnnl::memory::desc& wanted,
                           bool is_output)
    : user_(plain, dnnl_engine(), nullptr),
      reordered_(plain != wanted) {
  if (!reordered_) {
    inner_ = user_;
    return;
  }
  inner_ = dnnl::memory(wanted, dnnl_engine());  // owned buffer in the primitive's layout
  const dnnl::memory& from = is_output ? inner_ : user_;
  const dnnl::memory& to = is_output ? user_ : inner_;
  reorder_ = Primitive(dnnl::reorder::primitive_desc(from, to, cached_attr()));
}

const dnnl::memory& LayoutBridge::input(void* data) const {
  user_.set_data_handle(data);
  if (reordered_) reorder_.run({{DNNL_ARG_FROM, user_.get()}, {DNNL_ARG_TO, inner_.get()}});
  return inner_;
}

const dnnl::memory& LayoutBridge::output(void* data) const {
  user_.set_data_handle(data);
  return inner_;
}

void LayoutBridge::written() const {
  if (reordered_) reorder_.run({{DNNL_ARG_FROM, inner_.get()}, {DNNL_ARG_TO, user_.get()}});
}

}  // namespace ruche::ops::cpu
