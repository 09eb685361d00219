// Batch normalization on oneDNN, per channel over N (and H, W), for [N, C] and [N, C, H, W].
// oneDNN computes the batch mean and biased variance; the running statistics (PyTorch's unbiased
// running variance) are updated here. gamma and beta may be undefined (no affine transform).
// The synchronized batch norm's pieces (statistics summed over ranks by the caller) are plain
// loops at the end. A fused ReLU (BatchNormParams::fused_relu) is oneDNN's fuse_norm_relu in the
// forward pass; backward ignores it (the ReLU layer's backward masks dy from the output).
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <utility>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/dnnl_context.h"
#include "ops/cpu/layout.h"
#include "ops/op_checks.h"

namespace ruche::ops::cpu {
namespace {

using dnnl::memory;
using dnnl::normalization_flags;
using Key = CacheKey<8>;

// The CPU's per-tensor check: every argument dense f32 (ops/op_checks.h does the shapes).
void check_f32(const char* op, const char* name, const Tensor& t) { check_dense(op, name, t); }
constexpr BatchNormChecks kChecks{check_f32,
                                  [](const char* op, const char* name, const Tensor& t,
                                     const Tensor&) { check_dense(op, name, t); },
                                  check_f32};

normalization_flags flags_for(bool scale, bool shift, bool global_stats = false,
                              bool relu = false) {
  auto f = normalization_flags::none;
  if (scale) f = f | normalization_flags::use_scale;
  if (shift) f = f | normalization_flags::use_shift;
  if (global_stats) f = f | normalization_flags::use_global_stats;
  if (relu) f = f | normalization_flags::fuse_norm_relu;
  return f;
}

// The data tensors of one call share x's layout (plain, or the blocked layout the net planned).
void check_layouts(const char* op, const Tensor& x, std::initializer_list<const Tensor*> data) {
  for (const Tensor* t : data) {
    RUCHE_CHECK(!t->defined() || t->layout() == x.layout())
        << op << ": " << t->str() << " is not in the layout of x " << x.str();
  }
}

// The fused ReLU runs in the primitive on blocked tensors. On plain ones oneDNN 2.6 takes a slow
// path for fuse_norm_relu (fashion_cnn's bn1 forward 33 ms against 8 ms without it), and the
// reference path fuses nothing: there it runs after the primitive, apart.
bool relu_in_primitive(const BatchNormParams& p, const Tensor& x) {
  return p.fused_relu && !x.is_plain() && !cpu_reference_path();
}

void relu_apart(const BatchNormParams& p, const Tensor& x, Tensor& y) {
  if (p.fused_relu && !relu_in_primitive(p, x)) {
    cpu::activation_forward(Activation::relu, 0.0f, y, y);
  }
}

Key make_key(const Tensor& t, normalization_flags flags, float eps) {
  const Shape& x = t.shape();
  const std::int64_t h = x.ndim() == 4 ? x[2] : 0, w = x.ndim() == 4 ? x[3] : 0;
  return {x[0],
          x[1],
          h,
          w,
          static_cast<std::int64_t>(flags),
          std::bit_cast<std::int32_t>(eps),
          static_cast<std::int64_t>(t.layout())};
}

// The primitive and one memory object per argument it may take (handles set per call). The
// workspace (training with a fused ReLU: its mask) is the entry's own; nothing reads it back.
struct BatchNorm {
  Primitive bn;
  memory src, dst, diff_src, diff_dst, scale, shift, mean, var, diff_scale, diff_shift, workspace;
};

template <typename PrimitiveDesc>
BatchNorm make_entry(const PrimitiveDesc& pd, const Tensor& x) {
  const memory::desc data = tensor_desc(x);
  const memory::desc stat({x.size(1)}, memory::data_type::f32, memory::format_tag::a);
  const auto m = [](const memory::desc& d) { return memory(d, dnnl_engine(), nullptr); };
  const memory::desc ws = pd.workspace_desc();
  return {Primitive(pd), m(data), m(data),
          m(data),       m(data), m(stat),
          m(stat),       m(stat), m(stat),
          m(stat),       m(stat), ws.get_size() > 0 ? memory(ws, dnnl_engine()) : memory()};
}

dnnl::batch_normalization_forward::primitive_desc forward_pd(dnnl::prop_kind prop, const Tensor& x,
                                                             float eps, normalization_flags flags) {
  const dnnl::batch_normalization_forward::desc desc(prop, tensor_desc(x), eps, flags);
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
  std::array<dnnl_exec_arg_t, 11> args_{};
  std::size_t n_ = 0;
};

}  // namespace

void batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                 Tensor& y, Tensor& running_mean, Tensor& running_var,
                                 Tensor& save_mean, Tensor& save_var, const BatchNormParams& p) {
  const char* op = "batch_norm_forward_training";
  const std::int64_t c = check_batch_norm_forward_training(
      op, x, gamma, beta, running_mean, running_var, y, save_mean, save_var, kChecks);
  const std::int64_t n = x.numel() / c;  // values per channel
  RUCHE_REQUIRE(n > 1) << op << ": expected more than 1 value per channel when training, got x "
                       << x.shape().str();
  check_layouts(op, x, {&y});

  const auto flags = flags_for(gamma.defined(), beta.defined(), false, relu_in_primitive(p, x));
  thread_local PrimitiveCache<8, BatchNorm> cache;
  const BatchNorm& e = cached(cache, make_key(x, flags, p.eps), [&] {
    return make_entry(forward_pd(dnnl::prop_kind::forward_training, x, p.eps, flags), x);
  });
  Args args;
  args.add(DNNL_ARG_SRC, e.src, x);
  args.add(DNNL_ARG_DST, e.dst, y);
  args.add(DNNL_ARG_SCALE, e.scale, gamma);
  args.add(DNNL_ARG_SHIFT, e.shift, beta);
  args.add(DNNL_ARG_MEAN, e.mean, save_mean);  // outputs here: the batch statistics
  args.add(DNNL_ARG_VARIANCE, e.var, save_var);
  if (e.workspace) args.add(DNNL_ARG_WORKSPACE, e.workspace);
  e.bn.run(args.get());
  relu_apart(p, x, y);

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
  check_batch_norm_forward_inference(op, x, gamma, beta, running_mean, running_var, y, kChecks);
  check_layouts(op, x, {&y});

  const auto flags = flags_for(gamma.defined(), beta.defined(), true, relu_in_primitive(p, x));
  thread_local PrimitiveCache<8, BatchNorm> cache;
  const BatchNorm& e = cached(cache, make_key(x, flags, p.eps), [&] {
    return make_entry(forward_pd(dnnl::prop_kind::forward_inference, x, p.eps, flags), x);
  });
  Args args;
  args.add(DNNL_ARG_SRC, e.src, x);
  args.add(DNNL_ARG_DST, e.dst, y);
  args.add(DNNL_ARG_SCALE, e.scale, gamma);
  args.add(DNNL_ARG_SHIFT, e.shift, beta);
  args.add(DNNL_ARG_MEAN, e.mean, running_mean);  // inputs here: use_global_stats
  args.add(DNNL_ARG_VARIANCE, e.var, running_var);
  e.bn.run(args.get());
  relu_apart(p, x, y);
}

void batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                         const Tensor& save_mean, const Tensor& save_var, Tensor& dx,
                         Tensor& dgamma, Tensor& dbeta, const BatchNormParams& p) {
  const char* op = "batch_norm_backward";
  check_batch_norm_backward(op, dy, x, gamma, save_mean, save_var, dx, dgamma, dbeta, kChecks);
  check_layouts(op, x, {&dy, &dx});

  // use_shift only asks oneDNN for dbeta; beta itself does not enter the gradients.
  const auto flags = flags_for(gamma.defined(), dbeta.defined());
  const bool params = gamma.defined() || dbeta.defined();
  thread_local PrimitiveCache<8, BatchNorm> cache;
  const BatchNorm& e = cached(cache, make_key(x, flags, p.eps), [&] {
    const auto prop = params ? dnnl::prop_kind::backward : dnnl::prop_kind::backward_data;
    const memory::desc data = tensor_desc(x);
    const dnnl::batch_normalization_backward::desc desc(prop, data, data, p.eps, flags);
    const dnnl::batch_normalization_backward::primitive_desc pd(
        desc, cached_attr(), dnnl_engine(),
        forward_pd(dnnl::prop_kind::forward_training, x, p.eps, flags));
    BatchNorm entry = make_entry(pd, x);
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

// ---- synchronized batch norm: plain loops over the channels (one channel per thread) ----

namespace {

// The per-channel layout of x: N planes of `plane` values per channel (plane = H * W, or 1).
struct Planes {
  std::int64_t n = 0, c = 0, plane = 0;
  std::int64_t count() const { return n * plane; }  // values per channel
  std::int64_t at(std::int64_t i, std::int64_t ch) const { return (i * c + ch) * plane; }
};

Planes planes_of(const Tensor& x) {
  return {x.size(0), x.size(1), x.ndim() == 4 ? x.size(2) * x.size(3) : 1};
}

// A reduction buffer [2C + 1]: two per-channel rows and the count.

// Whether a loop over the channels of x is worth a team of threads.
bool parallel_for(const Tensor& x) { return x.numel() >= kParallelMin; }

}  // namespace

void batch_norm_local_stats(const Tensor& x, Tensor& stats) {
  const char* op = "batch_norm_local_stats";
  const std::int64_t c = check_batch_norm_data(op, "x", x, kChecks);
  check_batch_norm_sums(op, "stats", stats, c, kChecks);
  const Planes g = planes_of(x);
  const float* px = x.data<float>();
  float* ps = stats.data<float>();
#pragma omp parallel for if (parallel_for(x))
  for (std::int64_t ch = 0; ch < c; ++ch) {
    double s1 = 0, s2 = 0;
    for (std::int64_t i = 0; i < g.n; ++i) {
      const float* p = px + g.at(i, ch);
      for (std::int64_t k = 0; k < g.plane; ++k) {
        const double v = p[k];
        s1 += v;
        s2 += v * v;
      }
    }
    ps[ch] = static_cast<float>(s1);
    ps[c + ch] = static_cast<float>(s2);
  }
  ps[2 * c] = static_cast<float>(g.count());
}

void batch_norm_stats_to_moments(const Tensor& stats, Tensor& running_mean, Tensor& running_var,
                                 Tensor& save_mean, Tensor& save_var, const BatchNormParams& p) {
  const char* op = "batch_norm_stats_to_moments";
  const std::int64_t c = check_batch_norm_stats_to_moments(op, stats, running_mean, running_var,
                                                           save_mean, save_var, kChecks);
  const float* ps = stats.data<float>();
  const double n = ps[2 * c];
  RUCHE_REQUIRE(n > 1) << op << ": expected more than 1 value per channel when training, got " << n;
  const double m = p.momentum, unbias = n / (n - 1);
  float* rm = running_mean.data<float>();
  float* rv = running_var.data<float>();
  float* sm = save_mean.data<float>();
  float* sv = save_var.data<float>();
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const double mean = ps[ch] / n;
    // E[x^2] - E[x]^2, clamped: rounding may leave a constant channel slightly negative.
    const double var = std::max(0.0, ps[c + ch] / n - mean * mean);
    sm[ch] = static_cast<float>(mean);
    sv[ch] = static_cast<float>(var);
    rm[ch] = static_cast<float>((1 - m) * rm[ch] + m * mean);
    rv[ch] = static_cast<float>((1 - m) * rv[ch] + m * var * unbias);
  }
}

void batch_norm_backward_reduce(const Tensor& dy, const Tensor& x, const Tensor& save_mean,
                                const Tensor& save_var, Tensor& sums, Tensor& dgamma, Tensor& dbeta,
                                const BatchNormParams& p) {
  const char* op = "batch_norm_backward_reduce";
  const std::int64_t c = check_batch_norm_backward_reduce(op, dy, x, save_mean, save_var, sums,
                                                          dgamma, dbeta, kChecks);
  const Planes g = planes_of(x);
  const float* px = x.data<float>();
  const float* pdy = dy.data<float>();
  const float* sm = save_mean.data<float>();
  const float* sv = save_var.data<float>();
  float* ps = sums.data<float>();
  float* pdg = dgamma.defined() ? dgamma.data<float>() : nullptr;
  float* pdb = dbeta.defined() ? dbeta.data<float>() : nullptr;
#pragma omp parallel for if (parallel_for(x))
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const double mean = sm[ch];
    double sum_dy = 0, sum_dy_xmu = 0;
    for (std::int64_t i = 0; i < g.n; ++i) {
      const float* xi = px + g.at(i, ch);
      const float* dyi = pdy + g.at(i, ch);
      for (std::int64_t k = 0; k < g.plane; ++k) {
        sum_dy += dyi[k];
        sum_dy_xmu += static_cast<double>(dyi[k]) * (xi[k] - mean);
      }
    }
    const float sum_dy_xhat =
        static_cast<float>(sum_dy_xmu / std::sqrt(static_cast<double>(sv[ch]) + p.eps));
    ps[ch] = static_cast<float>(sum_dy);
    ps[c + ch] = sum_dy_xhat;
    if (pdb) pdb[ch] = static_cast<float>(sum_dy);
    if (pdg) pdg[ch] = sum_dy_xhat;
  }
  ps[2 * c] = static_cast<float>(g.count());
}

void batch_norm_backward_apply(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                               const Tensor& save_mean, const Tensor& save_var, const Tensor& sums,
                               Tensor& dx, const BatchNormParams& p) {
  const char* op = "batch_norm_backward_apply";
  const std::int64_t c =
      check_batch_norm_backward_apply(op, dy, x, gamma, save_mean, save_var, sums, dx, kChecks);
  const float* ps = sums.data<float>();
  const double n = ps[2 * c];
  RUCHE_REQUIRE(n > 0) << op << ": the count in sums must be positive, got " << n;
  const Planes g = planes_of(x);
  const float* px = x.data<float>();
  const float* pdy = dy.data<float>();
  const float* pg = gamma.defined() ? gamma.data<float>() : nullptr;
  const float* sm = save_mean.data<float>();
  const float* sv = save_var.data<float>();
  float* pdx = dx.data<float>();
  // dx = k * (dy - a - (x - mean) * b): k = gamma * invstd, a = mean(dy),
  // b = invstd * mean(dy * x_hat), the means over all n values.
#pragma omp parallel for collapse(2) if (parallel_for(x))
  for (std::int64_t i = 0; i < g.n; ++i) {
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const double invstd = 1.0 / std::sqrt(static_cast<double>(sv[ch]) + p.eps);
      const float k = static_cast<float>((pg ? pg[ch] : 1.0) * invstd);
      const float a = static_cast<float>(ps[ch] / n);
      const float b = static_cast<float>(ps[c + ch] / n * invstd);
      const float mean = sm[ch];
      const float* xi = px + g.at(i, ch);
      const float* dyi = pdy + g.at(i, ch);
      float* dxi = pdx + g.at(i, ch);
      for (std::int64_t j = 0; j < g.plane; ++j) dxi[j] = k * (dyi[j] - a - (xi[j] - mean) * b);
    }
  }
}

}  // namespace ruche::ops::cpu
