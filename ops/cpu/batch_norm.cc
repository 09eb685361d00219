// Batch normalization on oneDNN, per channel over N (and H, W), for [N, C] and [N, C, H, W].
// oneDNN computes the batch mean and biased variance; the running statistics (PyTorch's unbiased
// running variance) are updated here. gamma and beta may be undefined (no affine transform).
#include <array>
#include <bit>
#include <cstdint>
#include <span>
#include <utility>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/dnnl_context.h"

namespace ruche::ops::cpu {
namespace {

using dnnl::memory;
using dnnl::normalization_flags;
using Key = CacheKey<8>;

// x must be [N, C] or [N, C, H, W]; returns C.
std::int64_t check_data(const char* op, const char* name, const Tensor& x) {
  check_dense(op, name, x);
  RUCHE_REQUIRE(x.ndim() == 2 || x.ndim() == 4)
      << op << ": " << name << " must be [N, C] or [N, C, H, W], got " << x.shape().str();
  return x.size(1);
}

// t (when required or given) is a per-channel vector [C].
void check_channels(const char* op, const char* name, const Tensor& t, std::int64_t c,
                    bool required) {
  if (!required && !t.defined()) return;
  check_dense(op, name, t);
  RUCHE_REQUIRE(t.shape() == Shape{c}) << op << ": " << name << " must be [" << c
                                       << "] (one value per channel), got " << t.shape().str();
}

void check_like(const char* op, const char* name, const Tensor& t, const Tensor& x) {
  check_dense(op, name, t);
  RUCHE_REQUIRE(t.shape() == x.shape())
      << op << ": " << name << " has shape " << t.shape().str() << " but x has " << x.shape().str();
}

normalization_flags flags_for(bool scale, bool shift, bool global_stats = false) {
  auto f = normalization_flags::none;
  if (scale) f = f | normalization_flags::use_scale;
  if (shift) f = f | normalization_flags::use_shift;
  if (global_stats) f = f | normalization_flags::use_global_stats;
  return f;
}

Key make_key(const Shape& x, normalization_flags flags, float eps) {
  const std::int64_t h = x.ndim() == 4 ? x[2] : 0, w = x.ndim() == 4 ? x[3] : 0;
  return {x[0], x[1], h, w, static_cast<std::int64_t>(flags), std::bit_cast<std::int32_t>(eps)};
}

// The primitive and one memory object per argument it may take (handles set per call).
struct BatchNorm {
  Primitive bn;
  memory src, dst, diff_src, diff_dst, scale, shift, mean, var, diff_scale, diff_shift;
};

BatchNorm make_entry(Primitive bn, const Shape& x) {
  const memory::desc data = plain_desc(x);
  const memory::desc stat({x[1]}, memory::data_type::f32, memory::format_tag::a);
  const auto m = [](const memory::desc& d) { return memory(d, dnnl_engine(), nullptr); };
  return {std::move(bn), m(data), m(data), m(data), m(data), m(stat),
          m(stat),       m(stat), m(stat), m(stat), m(stat)};
}

dnnl::batch_normalization_forward::primitive_desc forward_pd(dnnl::prop_kind prop, const Shape& x,
                                                             float eps, normalization_flags flags) {
  const dnnl::batch_normalization_forward::desc desc(prop, plain_desc(x), eps, flags);
  return {desc, cached_attr(), dnnl_engine()};
}

// The arguments of one call: tensors bound to the entry's memory objects; undefined ones skipped.
class Args {
 public:
  void add(int arg, const memory& m, const Tensor& t) {
    if (!t.defined()) return;
    m.set_data_handle(t.raw_data());
    add(arg, m);
  }
  void add(int arg, const memory& m) {
    RUCHE_CHECK(n_ < args_.size()) << "batch norm: too many oneDNN arguments";
    args_[n_++] = {arg, m.get()};
  }
  std::span<const dnnl_exec_arg_t> get() const { return {args_.data(), n_}; }

 private:
  std::array<dnnl_exec_arg_t, 10> args_{};
  std::size_t n_ = 0;
};

}  // namespace

void batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                 Tensor& y, Tensor& running_mean, Tensor& running_var,
                                 Tensor& save_mean, Tensor& save_var, const BatchNormParams& p) {
  const char* op = "batch_norm_forward_training";
  const std::int64_t c = check_data(op, "x", x);
  check_like(op, "y", y, x);
  check_channels(op, "gamma", gamma, c, false);
  check_channels(op, "beta", beta, c, false);
  check_channels(op, "running_mean", running_mean, c, true);
  check_channels(op, "running_var", running_var, c, true);
  check_channels(op, "save_mean", save_mean, c, true);
  check_channels(op, "save_var", save_var, c, true);
  const std::int64_t n = x.numel() / c;  // values per channel
  RUCHE_REQUIRE(n > 1) << op << ": expected more than 1 value per channel when training, got x "
                       << x.shape().str();

  const auto flags = flags_for(gamma.defined(), beta.defined());
  thread_local PrimitiveCache<8, BatchNorm> cache;
  const BatchNorm& e = cached(cache, make_key(x.shape(), flags, p.eps), [&] {
    return make_entry(
        Primitive(forward_pd(dnnl::prop_kind::forward_training, x.shape(), p.eps, flags)),
        x.shape());
  });
  Args args;
  args.add(DNNL_ARG_SRC, e.src, x);
  args.add(DNNL_ARG_DST, e.dst, y);
  args.add(DNNL_ARG_SCALE, e.scale, gamma);
  args.add(DNNL_ARG_SHIFT, e.shift, beta);
  args.add(DNNL_ARG_MEAN, e.mean, save_mean);  // outputs here: the batch statistics
  args.add(DNNL_ARG_VARIANCE, e.var, save_var);
  e.bn.run(args.get());

  // PyTorch's running statistics: the variance enters unbiased, times n / (n - 1).
  const float m = p.momentum;
  const float unbias = static_cast<float>(n) / static_cast<float>(n - 1);
  const float* bm = save_mean.data<float>();
  const float* bv = save_var.data<float>();
  float* rm = running_mean.data<float>();
  float* rv = running_var.data<float>();
  for (std::int64_t i = 0; i < c; ++i) {
    rm[i] = (1 - m) * rm[i] + m * bm[i];
    rv[i] = (1 - m) * rv[i] + m * bv[i] * unbias;
  }
}

void batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  const Tensor& running_mean, const Tensor& running_var, Tensor& y,
                                  const BatchNormParams& p) {
  const char* op = "batch_norm_forward_inference";
  const std::int64_t c = check_data(op, "x", x);
  check_like(op, "y", y, x);
  check_channels(op, "gamma", gamma, c, false);
  check_channels(op, "beta", beta, c, false);
  check_channels(op, "running_mean", running_mean, c, true);
  check_channels(op, "running_var", running_var, c, true);

  const auto flags = flags_for(gamma.defined(), beta.defined(), true);
  thread_local PrimitiveCache<8, BatchNorm> cache;
  const BatchNorm& e = cached(cache, make_key(x.shape(), flags, p.eps), [&] {
    return make_entry(
        Primitive(forward_pd(dnnl::prop_kind::forward_inference, x.shape(), p.eps, flags)),
        x.shape());
  });
  Args args;
  args.add(DNNL_ARG_SRC, e.src, x);
  args.add(DNNL_ARG_DST, e.dst, y);
  args.add(DNNL_ARG_SCALE, e.scale, gamma);
  args.add(DNNL_ARG_SHIFT, e.shift, beta);
  args.add(DNNL_ARG_MEAN, e.mean, running_mean);  // inputs here: use_global_stats
  args.add(DNNL_ARG_VARIANCE, e.var, running_var);
  e.bn.run(args.get());
}

void batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                         const Tensor& save_mean, const Tensor& save_var, Tensor& dx,
                         Tensor& dgamma, Tensor& dbeta, const BatchNormParams& p) {
  const char* op = "batch_norm_backward";
  const std::int64_t c = check_data(op, "x", x);
  check_like(op, "dy", dy, x);
  check_like(op, "dx", dx, x);
  check_channels(op, "gamma", gamma, c, false);
  check_channels(op, "save_mean", save_mean, c, true);
  check_channels(op, "save_var", save_var, c, true);
  check_channels(op, "dgamma", dgamma, c, false);
  check_channels(op, "dbeta", dbeta, c, false);
  RUCHE_REQUIRE(gamma.defined() == dgamma.defined())
      << op << ": dgamma must be given exactly when gamma is";

  // use_shift only asks oneDNN for dbeta; beta itself does not enter the gradients.
  const auto flags = flags_for(gamma.defined(), dbeta.defined());
  const bool params = gamma.defined() || dbeta.defined();
  thread_local PrimitiveCache<8, BatchNorm> cache;
  const BatchNorm& e = cached(cache, make_key(x.shape(), flags, p.eps), [&] {
    const auto prop = params ? dnnl::prop_kind::backward : dnnl::prop_kind::backward_data;
    const memory::desc data = plain_desc(x.shape());
    const dnnl::batch_normalization_backward::desc desc(prop, data, data, p.eps, flags);
    const dnnl::batch_normalization_backward::primitive_desc pd(
        desc, cached_attr(), dnnl_engine(),
        forward_pd(dnnl::prop_kind::forward_training, x.shape(), p.eps, flags));
    BatchNorm entry = make_entry(Primitive(pd), x.shape());
    // oneDNN 2.6 wants a shift argument whenever use_shift is set, though backward never reads
    // its values; we have no beta here, so give it a buffer of its own.
    entry.shift = memory(entry.shift.get_desc(), dnnl_engine());
    return entry;
  });
  Args args;
  args.add(DNNL_ARG_SRC, e.src, x);
  args.add(DNNL_ARG_DIFF_DST, e.diff_dst, dy);
  args.add(DNNL_ARG_SCALE, e.scale, gamma);
  args.add(DNNL_ARG_MEAN, e.mean, save_mean);
  args.add(DNNL_ARG_VARIANCE, e.var, save_var);
  args.add(DNNL_ARG_DIFF_SRC, e.diff_src, dx);
  args.add(DNNL_ARG_DIFF_SCALE, e.diff_scale, dgamma);
  args.add(DNNL_ARG_DIFF_SHIFT, e.diff_shift, dbeta);
  if (dbeta.defined()) args.add(DNNL_ARG_SHIFT, e.shift);
  e.bn.run(args.get());
}

}  // namespace ruche::ops::cpu
