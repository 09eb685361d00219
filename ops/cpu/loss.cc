// Losses with mean reduction, PyTorch's semantics. Cross-entropy follows F.cross_entropy with
// weight=, label_smoothing= and ignore_index=: with smoothing e over C classes and weights w,
//   loss = [(1 - e) sum_n w[y_n] (-log p[n, y_n]) + e / C sum_n sum_c w[c] (-log p[n, c])] / W
// where n runs over the rows whose label is not ignored and W = sum_n w[y_n] (their number
// without weights). Sums run in double.
#include <algorithm>
#include <cmath>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/pointwise_loss.h"

namespace ruche::ops::cpu {
namespace {

// The targets that count: their weights' sum W (their number without class weights) and their
// number.
struct Counted {
  double weight = 0;
  std::int64_t rows = 0;
};

// Checks labels (i32 [N], each in [0, C) or the ignored label) and the optional class weights
// (f32 [C]).
Counted check_targets(const char* op, const Tensor& labels, std::int64_t N, std::int64_t C,
                      const CrossEntropyParams& p) {
  check_dense(op, "labels", labels, DType::i32);
  RUCHE_REQUIRE(labels.shape() == Shape{N})
      << op << ": labels must be [" << N << "] to match the logits' batch, got " << labels.str();
  RUCHE_REQUIRE(p.label_smoothing >= 0.0f && p.label_smoothing <= 1.0f)
      << op << ": label_smoothing must be in [0, 1], got " << p.label_smoothing;
  const float* w = nullptr;
  if (p.class_weights.defined()) {
    check_dense(op, "class_weights", p.class_weights);
    RUCHE_REQUIRE(p.class_weights.shape() == Shape{C})
        << op << ": class_weights must be [" << C << "], got " << p.class_weights.str();
    w = p.class_weights.data<float>();
  }
  const std::int32_t* pl = labels.data<std::int32_t>();
  Counted counted;
  for (std::int64_t n = 0; n < N; ++n) {
    if (pl[n] == p.ignored()) continue;
    RUCHE_REQUIRE(pl[n] >= 0 && pl[n] < C) << op << ": label " << pl[n] << " at index " << n
                                           << " is out of range for " << C << " classes";
    counted.weight += w ? w[pl[n]] : 1.0;
    ++counted.rows;
  }
  return counted;
}

// Every row ignored: loss and gradient 0 (ops.h); N == 0 stays 0 / 0.
bool all_ignored(std::int64_t N, const Counted& counted) { return N > 0 && counted.rows == 0; }

void check_logits(const char* op, const char* arg, const Tensor& t) {
  check_dense(op, arg, t);
  RUCHE_REQUIRE(t.ndim() == 2) << op << ": " << arg << " must be [N, C], got " << t.str();
}

}  // namespace

void softmax_cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs,
                                   Tensor& loss, const CrossEntropyParams& p) {
  const char* op = "softmax_cross_entropy_forward";
  check_logits(op, "logits", logits);
  check_dense(op, "probs", probs);
  check_same_shape_as(op, "probs", probs, "logits", logits);
  check_scalar(op, "loss", loss);
  const std::int64_t N = logits.size(0), C = logits.size(1);
  const Counted counted = check_targets(op, labels, N, C, p);
  const float* px = logits.data<float>();
  const std::int32_t* pl = labels.data<std::int32_t>();
  const float* w = p.class_weights.defined() ? p.class_weights.data<float>() : nullptr;
  float* pp = probs.data<float>();
  const double e = p.label_smoothing;
  double nll = 0, smooth = 0;
#pragma omp parallel for reduction(+ : nll, smooth) if (N * C >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    const float* xr = px + n * C;
    float* pr = pp + n * C;
    float m = -INFINITY;
    for (std::int64_t c = 0; c < C; ++c) m = std::fmax(m, xr[c]);
    double sum = 0;
    for (std::int64_t c = 0; c < C; ++c) sum += std::exp(static_cast<double>(xr[c]) - m);
    // log p[c] = x[c] - lse, computed from the logits so a tiny p never becomes log(0).
    // cppcheck-suppress invalidFunctionArg ; sum >= 1, the max's term (labels in [0, C): C >= 1)
    const double lse = m + std::log(sum);
    double row_smooth = 0;
    for (std::int64_t c = 0; c < C; ++c) {
      const double logp = xr[c] - lse;
      pr[c] = static_cast<float>(std::exp(logp));
      row_smooth -= (w ? w[c] : 1.0) * logp;
    }
    const std::int32_t y = pl[n];
    if (y == p.ignored()) continue;
    nll -= (w ? w[y] : 1.0) * (xr[y] - lse);
    smooth += row_smooth;
  }
  const double W = counted.weight;
  const double value = (1.0 - e) * nll / W + e / static_cast<double>(C) * smooth / W;
  loss.data<float>()[0] = all_ignored(N, counted) ? 0.0f : static_cast<float>(value);
}

void softmax_cross_entropy_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits,
                                    float dloss, const CrossEntropyParams& p) {
  const char* op = "softmax_cross_entropy_backward";
  check_logits(op, "probs", probs);
  check_dense(op, "dlogits", dlogits);
  check_same_shape_as(op, "dlogits", dlogits, "probs", probs);
  const std::int64_t N = probs.size(0), C = probs.size(1);
  const Counted counted = check_targets(op, labels, N, C, p);
  const float* pp = probs.data<float>();
  const std::int32_t* pl = labels.data<std::int32_t>();
  const float* w = p.class_weights.defined() ? p.class_weights.data<float>() : nullptr;
  float* pd = dlogits.data<float>();
  const double e = p.label_smoothing;
  double class_weight_sum = static_cast<double>(C);
  if (w) {
    class_weight_sum = 0;
    for (std::int64_t c = 0; c < C; ++c) class_weight_sum += w[c];
  }
  // d/dx[n, j] = dloss / W * ((1 - e) w[y_n] (p_j - [j == y_n]) + e / C (p_j sum_c w[c] - w[j])).
  const double per_target = all_ignored(N, counted) ? 0.0 : dloss / counted.weight;
  const double hard = (1.0 - e) * per_target;
  const double soft = e / static_cast<double>(C) * per_target;
#pragma omp parallel for if (N * C >= kParallelMin)
  for (std::int64_t n = 0; n < N; ++n) {
    const float* pr = pp + n * C;
    float* dr = pd + n * C;
    const std::int32_t y = pl[n];
    if (y == p.ignored()) {
      std::fill(dr, dr + C, 0.0f);
      continue;
    }
    const double wy = w ? w[y] : 1.0;
    for (std::int64_t c = 0; c < C; ++c) {
      const double onehot = c == y ? 1.0 : 0.0;
      const double wc = w ? w[c] : 1.0;
      dr[c] =
          static_cast<float>(hard * wy * (pr[c] - onehot) + soft * (pr[c] * class_weight_sum - wc));
    }
  }
}

void mse_forward(const Tensor& pred, const Tensor& target, Tensor& loss) {
  const char* op = "mse_forward";
  check_dense(op, "pred", pred);
  check_dense(op, "target", target);
  check_same_shape_as(op, "target", target, "pred", pred);
  check_scalar(op, "loss", loss);
  RUCHE_REQUIRE(pred.numel() > 0) << op << ": pred is empty";
  const float* pp = pred.data<float>();
  const float* pt = target.data<float>();
  const std::int64_t n = pred.numel();
  double sum = 0;
#pragma omp parallel for reduction(+ : sum) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(pp[i]) - pt[i];
    sum += d * d;
  }
  loss.data<float>()[0] = static_cast<float>(sum / static_cast<double>(n));
}

void mse_backward(const Tensor& pred, const Tensor& target, Tensor& dpred, float dloss) {
  const char* op = "mse_backward";
  check_dense(op, "pred", pred);
  check_dense(op, "target", target);
  check_dense(op, "dpred", dpred);
  check_same_shape_as(op, "target", target, "pred", pred);
  check_same_shape_as(op, "dpred", dpred, "pred", pred);
  const float* pp = pred.data<float>();
  const float* pt = target.data<float>();
  float* pd = dpred.data<float>();
  const std::int64_t n = pred.numel();
  const float k = static_cast<float>(2.0 * dloss / static_cast<double>(n));
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) pd[i] = k * (pp[i] - pt[i]);
}

namespace {

void check_pointwise(const char* op, const PointwiseLossParams& p, const Tensor& pred,
                     const Tensor& target) {
  check_dense(op, "pred", pred);
  check_dense(op, "target", target);
  check_same_shape_as(op, "target", target, "pred", pred);
  RUCHE_REQUIRE(p.kind != PointwiseLoss::smooth_l1 || p.beta > 0)
      << op << ": smooth_l1 needs beta > 0, got " << p.beta;
}

}  // namespace

void pointwise_loss_forward(const PointwiseLossParams& p, const Tensor& pred, const Tensor& target,
                            Tensor& loss) {
  const char* op = "pointwise_loss_forward";
  check_pointwise(op, p, pred, target);
  check_scalar(op, "loss", loss);
  RUCHE_REQUIRE(pred.numel() > 0) << op << ": pred is empty";
  const float* pp = pred.data<float>();
  const float* pt = target.data<float>();
  const std::int64_t n = pred.numel();
  double sum = 0;
#pragma omp parallel for reduction(+ : sum) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) sum += pointwise_loss(p.kind, p.beta, pp[i], pt[i]);
  loss.data<float>()[0] = static_cast<float>(sum / static_cast<double>(n));
}

void pointwise_loss_backward(const PointwiseLossParams& p, const Tensor& pred, const Tensor& target,
                             Tensor& dpred, float dloss) {
  const char* op = "pointwise_loss_backward";
  check_pointwise(op, p, pred, target);
  check_dense(op, "dpred", dpred);
  check_same_shape_as(op, "dpred", dpred, "pred", pred);
  const float* pp = pred.data<float>();
  const float* pt = target.data<float>();
  float* pd = dpred.data<float>();
  const std::int64_t n = pred.numel();
  if (n == 0) return;
  const float k = static_cast<float>(static_cast<double>(dloss) / static_cast<double>(n));
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) {
    pd[i] = k * pointwise_loss_grad(p.kind, p.beta, pp[i], pt[i]);
  }
}

}  // namespace ruche::ops::cpu
