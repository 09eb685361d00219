// Argument checks both backends share (ops/op_checks.h): shapes and relations, one set of messages.
#include "ops/op_checks.h"

namespace ruche::ops {

void check_linear_args(const char* op, const Tensor& x, const char* x_name, const Tensor& w,
                       const char* w_name, const Tensor& y, const char* y_name, const Tensor& b,
                       const char* b_name, TensorCheck check) {
  check(op, x_name, x, x);
  check(op, w_name, w, x);
  check(op, y_name, y, x);
  RUCHE_REQUIRE(x.ndim() == 2) << op << ": " << x_name << " must be [N, in], got " << x.str();
  RUCHE_REQUIRE(w.ndim() == 2) << op << ": " << w_name << " must be [out, in], got " << w.str();
  RUCHE_REQUIRE(x.size(1) == w.size(1))
      << op << ": " << x_name << " " << x.shape().str() << " has " << x.size(1) << " features but "
      << w_name << " " << w.shape().str() << " expects " << w.size(1);
  const Shape expected{x.size(0), w.size(0)};
  RUCHE_REQUIRE(y.shape() == expected)
      << op << ": " << y_name << " must be " << expected.str() << ", got " << y.shape().str();
  if (b.defined()) {
    check(op, b_name, b, x);
    RUCHE_REQUIRE(b.shape() == Shape{w.size(0)})
        << op << ": " << b_name << " must be [" << w.size(0) << "], got " << b.shape().str();
  }
}

void check_conv2d_args(const char* op, const Tensor& x, const char* x_name, const Tensor& w,
                       const char* w_name, const Tensor& y, const char* y_name, const Tensor& b,
                       const char* b_name, const Conv2dParams& p, TensorCheck check) {
  check(op, x_name, x, x);
  check(op, w_name, w, x);
  check(op, y_name, y, x);
  Shape expected;
  try {
    expected = conv2d_output_shape(x.shape(), w.shape(), p);
  } catch (const Error& e) {
    RUCHE_FAIL() << op << ": " << e.what();
  }
  RUCHE_REQUIRE(y.shape() == expected)
      << op << ": " << y_name << " has shape " << y.shape().str() << " but " << x_name << " "
      << x.shape().str() << " and " << w_name << " " << w.shape().str() << " give "
      << expected.str();
  if (b.defined()) {
    check(op, b_name, b, x);
    RUCHE_REQUIRE(b.shape() == Shape{w.size(0)})
        << op << ": " << b_name << " must be [" << w.size(0) << "], got " << b.shape().str();
  }
}

void check_deconv2d_args(const char* op, const Tensor& x, const char* x_name, const Tensor& w,
                         const char* w_name, const Tensor& y, const char* y_name, const Tensor& b,
                         const char* b_name, const Deconv2dParams& p, TensorCheck check) {
  check(op, x_name, x, x);
  check(op, w_name, w, x);
  check(op, y_name, y, x);
  Shape expected;
  try {
    expected = deconv2d_output_shape(x.shape(), w.shape(), p);
  } catch (const Error& e) {
    RUCHE_FAIL() << op << ": " << e.what();
  }
  RUCHE_REQUIRE(y.shape() == expected)
      << op << ": " << y_name << " has shape " << y.shape().str() << " but " << x_name << " "
      << x.shape().str() << " and " << w_name << " " << w.shape().str() << " give "
      << expected.str();
  if (b.defined()) {
    check(op, b_name, b, x);
    RUCHE_REQUIRE(b.shape() == Shape{expected[1]})
        << op << ": " << b_name << " must be [" << expected[1] << "], got " << b.shape().str();
  }
}

void check_upsample2d_args(const char* op, const Tensor& x, const char* x_name, const Tensor& y,
                           const char* y_name, const UpsampleParams& p, TensorCheck check) {
  check(op, x_name, x, x);
  check(op, y_name, y, x);
  RUCHE_REQUIRE(x.ndim() == 4) << op << ": " << x_name << " must be [N, C, H, W], got " << x.str();
  RUCHE_REQUIRE(y.ndim() == 4) << op << ": " << y_name << " must be [N, C, H, W], got " << y.str();
  RUCHE_REQUIRE(x.size(0) == y.size(0) && x.size(1) == y.size(1))
      << op << ": " << y_name << " " << y.shape().str() << " and " << x_name << " "
      << x.shape().str() << " differ in N or C";
  RUCHE_REQUIRE(x.size(2) > 0 && x.size(3) > 0 && y.size(2) > 0 && y.size(3) > 0)
      << op << ": empty plane in " << x_name << " " << x.shape().str() << " or " << y_name << " "
      << y.shape().str();
  RUCHE_REQUIRE(p.scale_h >= 0 && p.scale_w >= 0)
      << op << ": scale factors must be >= 0, got " << p.scale_h << " and " << p.scale_w;
}

std::int64_t check_batch_norm_data(const char* op, const char* name, const Tensor& x,
                                   const BatchNormChecks& check) {
  check.data(op, name, x);
  RUCHE_REQUIRE(x.ndim() == 2 || x.ndim() == 4)
      << op << ": " << name << " must be [N, C] or [N, C, H, W], got " << x.shape().str();
  return x.size(1);
}

void check_batch_norm_like(const char* op, const char* name, const Tensor& t, const Tensor& x,
                           const BatchNormChecks& check) {
  check.like(op, name, t, x);
  RUCHE_REQUIRE(t.shape() == x.shape())
      << op << ": " << name << " has shape " << t.shape().str() << " but x has " << x.shape().str();
}

void check_batch_norm_channels(const char* op, const char* name, const Tensor& t, std::int64_t c,
                               bool required, const BatchNormChecks& check) {
  if (!required && !t.defined()) return;
  check.stat(op, name, t);
  RUCHE_REQUIRE(t.shape() == Shape{c}) << op << ": " << name << " must be [" << c
                                       << "] (one value per channel), got " << t.shape().str();
}

void check_batch_norm_sums(const char* op, const char* name, const Tensor& t, std::int64_t c,
                           const BatchNormChecks& check) {
  check.stat(op, name, t);
  RUCHE_REQUIRE(t.shape() == Shape{2 * c + 1})
      << op << ": " << name << " must be [" << 2 * c + 1
      << "] (two values per channel and a count), got " << t.shape().str();
}

std::int64_t check_batch_norm_forward_training(const char* op, const Tensor& x, const Tensor& gamma,
                                               const Tensor& beta, const Tensor& running_mean,
                                               const Tensor& running_var, const Tensor& y,
                                               const Tensor& save_mean, const Tensor& save_var,
                                               const BatchNormChecks& check) {
  const std::int64_t c =
      check_batch_norm_forward_inference(op, x, gamma, beta, running_mean, running_var, y, check);
  check_batch_norm_channels(op, "save_mean", save_mean, c, true, check);
  check_batch_norm_channels(op, "save_var", save_var, c, true, check);
  return c;
}

std::int64_t check_batch_norm_forward_inference(const char* op, const Tensor& x,
                                                const Tensor& gamma, const Tensor& beta,
                                                const Tensor& running_mean,
                                                const Tensor& running_var, const Tensor& y,
                                                const BatchNormChecks& check) {
  const std::int64_t c = check_batch_norm_data(op, "x", x, check);
  check_batch_norm_like(op, "y", y, x, check);
  check_batch_norm_channels(op, "gamma", gamma, c, false, check);
  check_batch_norm_channels(op, "beta", beta, c, false, check);
  check_batch_norm_channels(op, "running_mean", running_mean, c, true, check);
  check_batch_norm_channels(op, "running_var", running_var, c, true, check);
  return c;
}

std::int64_t check_batch_norm_backward(const char* op, const Tensor& dy, const Tensor& x,
                                       const Tensor& gamma, const Tensor& save_mean,
                                       const Tensor& save_var, const Tensor& dx,
                                       const Tensor& dgamma, const Tensor& dbeta,
                                       const BatchNormChecks& check) {
  const std::int64_t c = check_batch_norm_data(op, "x", x, check);
  check_batch_norm_like(op, "dy", dy, x, check);
  check_batch_norm_like(op, "dx", dx, x, check);
  check_batch_norm_channels(op, "gamma", gamma, c, false, check);
  check_batch_norm_channels(op, "save_mean", save_mean, c, true, check);
  check_batch_norm_channels(op, "save_var", save_var, c, true, check);
  check_batch_norm_channels(op, "dgamma", dgamma, c, false, check);
  check_batch_norm_channels(op, "dbeta", dbeta, c, false, check);
  RUCHE_REQUIRE(gamma.defined() == dgamma.defined())
      << op << ": dgamma must be given exactly when gamma is";
  return c;
}

std::int64_t check_batch_norm_stats_to_moments(const char* op, const Tensor& stats,
                                               const Tensor& running_mean,
                                               const Tensor& running_var, const Tensor& save_mean,
                                               const Tensor& save_var,
                                               const BatchNormChecks& check) {
  check.stat(op, "stats", stats);
  RUCHE_REQUIRE(stats.ndim() == 1 && stats.numel() % 2 == 1)
      << op << ": stats must be [2C + 1] (two values per channel and a count), got "
      << stats.shape().str();
  const std::int64_t c = stats.numel() / 2;
  check_batch_norm_channels(op, "running_mean", running_mean, c, true, check);
  check_batch_norm_channels(op, "running_var", running_var, c, true, check);
  check_batch_norm_channels(op, "save_mean", save_mean, c, true, check);
  check_batch_norm_channels(op, "save_var", save_var, c, true, check);
  return c;
}

std::int64_t check_batch_norm_backward_reduce(const char* op, const Tensor& dy, const Tensor& x,
                                              const Tensor& save_mean, const Tensor& save_var,
                                              const Tensor& sums, const Tensor& dgamma,
                                              const Tensor& dbeta, const BatchNormChecks& check) {
  const std::int64_t c = check_batch_norm_data(op, "x", x, check);
  check_batch_norm_like(op, "dy", dy, x, check);
  check_batch_norm_channels(op, "save_mean", save_mean, c, true, check);
  check_batch_norm_channels(op, "save_var", save_var, c, true, check);
  check_batch_norm_sums(op, "sums", sums, c, check);
  check_batch_norm_channels(op, "dgamma", dgamma, c, false, check);
  check_batch_norm_channels(op, "dbeta", dbeta, c, false, check);
  return c;
}

std::int64_t check_batch_norm_backward_apply(const char* op, const Tensor& dy, const Tensor& x,
                                             const Tensor& gamma, const Tensor& save_mean,
                                             const Tensor& save_var, const Tensor& sums,
                                             const Tensor& dx, const BatchNormChecks& check) {
  const std::int64_t c = check_batch_norm_data(op, "x", x, check);
  check_batch_norm_like(op, "dy", dy, x, check);
  check_batch_norm_like(op, "dx", dx, x, check);
  check_batch_norm_channels(op, "gamma", gamma, c, false, check);
  check_batch_norm_channels(op, "save_mean", save_mean, c, true, check);
  check_batch_norm_channels(op, "save_var", save_var, c, true, check);
  check_batch_norm_sums(op, "sums", sums, c, check);
  return c;
}

namespace {

void check_f32_dense(const char* op, const char* arg, const Tensor& t) {
  RUCHE_REQUIRE(t.defined()) << op << ": " << arg << " is not given";
  RUCHE_REQUIRE(t.dtype() == DType::f32) << op << ": " << arg << " must be f32, got " << t.str();
  RUCHE_REQUIRE(t.is_contiguous()) << op << ": " << arg << " " << t.str() << " is not contiguous";
}

void check_out(const char* op, const Tensor& out, DType dtype, std::int64_t count) {
  RUCHE_REQUIRE(out.defined() && out.dtype() == dtype && out.numel() == count &&
                out.is_contiguous())
      << op << ": out must be " << dtype_name(dtype) << " [" << count << "], got "
      << (out.defined() ? out.str() : "none");
}

void check_rows(const char* op, const Tensor& x, std::int64_t n) {
  RUCHE_REQUIRE(x.ndim() >= 1 && n >= 0 && n <= x.size(0))
      << op << ": " << n << " rows asked of " << x.str();
}

}  // namespace

std::int64_t check_top1_hits(const Tensor& probs, const Tensor& labels, std::int64_t n,
                             const Tensor& out) {
  constexpr const char* op = "top1_hits";
  check_f32_dense(op, "probs", probs);
  RUCHE_REQUIRE(probs.ndim() == 2) << op << ": probs must be [N, C], got " << probs.str();
  RUCHE_REQUIRE(labels.defined() && labels.dtype() == DType::i32 && labels.is_contiguous() &&
                labels.shape() == Shape{probs.size(0)})
      << op << ": labels must be i32 [" << probs.size(0) << "], got "
      << (labels.defined() ? labels.str() : "none");
  check_rows(op, probs, n);
  check_out(op, out, DType::f32, 2);
  return probs.size(1);
}

std::int64_t check_regression_errors(const Tensor& prediction, const Tensor& target, std::int64_t n,
                                     const Tensor& out) {
  constexpr const char* op = "regression_errors";
  check_f32_dense(op, "prediction", prediction);
  check_f32_dense(op, "target", target);
  RUCHE_REQUIRE(target.numel() == prediction.numel() && target.ndim() >= 1 &&
                target.size(0) == prediction.size(0))
      << op << ": target " << target.str() << " does not match prediction " << prediction.str();
  check_rows(op, prediction, n);
  check_out(op, out, DType::f32, 3);
  return prediction.size(0) > 0 ? prediction.numel() / prediction.size(0) : 0;
}

void check_sum_squares_finite(const Tensor& x, std::int64_t count, const Tensor& out) {
  constexpr const char* op = "sum_squares_finite";
  check_f32_dense(op, "x", x);
  RUCHE_REQUIRE(count >= 0 && count <= x.numel())
      << op << ": count " << count << " outside [0, " << x.numel() << "] of x " << x.str();
  check_out(op, out, DType::i64, 2);
}

AxisSplit check_axis_block(const char* op, const Tensor& part, const Tensor& whole, int axis,
                           std::int64_t offset) {
  RUCHE_REQUIRE(part.ndim() == whole.ndim() && axis >= 0 && axis < part.ndim())
      << op << ": part " << part.shape().str() << " and whole " << whole.shape().str()
      << " do not share axis " << axis;
  for (int d = 0; d < part.ndim(); ++d) {
    if (d == axis) continue;
    RUCHE_REQUIRE(part.size(d) == whole.size(d))
        << op << ": part " << part.shape().str() << " and whole " << whole.shape().str()
        << " differ in dim " << d << " (only axis " << axis << " may)";
  }
  RUCHE_REQUIRE(offset >= 0 && offset + part.size(axis) <= whole.size(axis))
      << op << ": a block of " << part.size(axis) << " at " << offset << " does not fit dim "
      << axis << " of " << whole.shape().str();
  if (whole.is_plain() && part.is_plain()) return split_at(op, whole, axis);
  const std::int64_t block = channel_block(whole.layout(), whole.size(1));
  RUCHE_CHECK(
      part.layout() == whole.layout() && axis == 1 &&
      (whole.layout() == Layout::nhwc || (offset % block == 0 && part.size(1) % block == 0)))
      << op << ": part " << part.str() << " at channel " << offset << " of whole " << whole.str()
      << " along axis " << axis << " (other layouts copy whole channel blocks along axis 1)";
  if (whole.layout() == Layout::nhwc) {
    return {whole.size(0) * whole.size(2) * whole.size(3), whole.size(1), 1};
  }
  return {whole.size(0), whole.size(1), whole.size(2) * whole.size(3)};
}

}  // namespace ruche::ops
