// The optimizer's ops on the CPU: the fused update over the ranges of the flat buffers (the element
// formula of ops/optimizer_update.h on the OpenMP team), the sum of squares with its finiteness
// flag, and the f32 / bf16 / f16 casts.
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/tensor/half.h"
#include "ops/cpu/checks.h"
#include "ops/op_checks.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/parallel_sum.h"

namespace ruche::ops::cpu {
namespace {

// The steps with LARS trust ratios filled in: per range, the norms of the parameter and of the raw
// gradient in double (ratio 1 for ranges that do not adapt). Grows once, then allocates nothing.
std::span<const RangeStep> with_trust_ratios(const OptimizerStep& step, const float* p,
                                             const float* g) {
  thread_local std::vector<RangeStep> steps;
  steps.assign(step.steps.begin(), step.steps.end());
  for (std::size_t r = 0; r < steps.size(); ++r) {
    const UpdateRange& range = step.ranges[r];
    steps[r].ratio = 1;
    if (!range.adapt) continue;
    const auto sums = parallel_sums<2>(range.begin, range.end, [p, g](std::int64_t i, auto& acc) {
      acc[0] += static_cast<double>(p[i]) * p[i];
      acc[1] += static_cast<double>(g[i]) * g[i];
    });
    steps[r].ratio = lars_trust_ratio(std::sqrt(sums[0]), std::sqrt(sums[1]), steps[r].weight_decay,
                                      step.hyper.trust);
  }
  return steps;
}

template <OptimizerKind K>
void update(const OptimizerStep& step, std::span<const RangeStep> steps, std::int64_t total,
            float* params, const float* grads, float* slot0, float* slot1) {
  const OptimizerHyper h = step.hyper;
  const float bc2 = step.bias_correction2_sqrt;
  const int num_ranges = static_cast<int>(step.ranges.size());
  // One team for the whole buffer; each range is split among the threads without a barrier
  // between ranges (they are disjoint).
#pragma omp parallel if (total >= kParallelMin)
  for (int r = 0; r < num_ranges; ++r) {
    const UpdateRange range = step.ranges[r];
    const RangeStep c = steps[r];
#pragma omp for schedule(static) nowait
    for (std::int64_t i = range.begin; i < range.end; ++i) {
      optimizer_element<K>(h, c, bc2, params[i], grads[i], slot0 ? slot0 + i : nullptr,
                           slot1 ? slot1 + i : nullptr);
    }
  }
}

float* data_if(bool used, Tensor& t) { return used ? t.data<float>() : nullptr; }

}  // namespace

void optimizer_update(const OptimizerStep& step, Tensor& params, const Tensor& grads, Tensor& slot0,
                      Tensor& slot1) {
  check_optimizer_update(step, params, grads, slot0, slot1);
  std::int64_t total = 0;
  for (const UpdateRange& range : step.ranges) total += range.end - range.begin;
  float* p = params.data<float>();
  const float* g = grads.data<float>();
  float* s0 = data_if(uses_slot0(step.kind, step.hyper), slot0);
  float* s1 = data_if(uses_slot1(step.kind, step.hyper), slot1);
  switch (step.kind) {
    case OptimizerKind::sgd:
      return update<OptimizerKind::sgd>(step, step.steps, total, p, g, s0, s1);
    case OptimizerKind::adam:
      return update<OptimizerKind::adam>(step, step.steps, total, p, g, s0, s1);
    case OptimizerKind::adamw:
      return update<OptimizerKind::adamw>(step, step.steps, total, p, g, s0, s1);
    case OptimizerKind::rmsprop:
      return update<OptimizerKind::rmsprop>(step, step.steps, total, p, g, s0, s1);
    case OptimizerKind::lars:
      return update<OptimizerKind::lars>(step, with_trust_ratios(step, p, g), total, p, g, s0, s1);
  }
  RUCHE_FAIL() << "optimizer_update: unknown optimizer kind " << static_cast<int>(step.kind);
}

void sum_squares_finite(const Tensor& x, std::int64_t count, Tensor& out) {
  check_sum_squares_finite(x, count, out);
  const float* v = x.data<float>();
  const auto sums = parallel_sums<2>(0, count, [v](std::int64_t i, auto& acc) {
    const double d = v[i];
    acc[0] += d * d;
    if (!std::isfinite(v[i])) acc[1] += 1;
  });
  std::int64_t* bits = out.data<std::int64_t>();
  bits[0] = std::bit_cast<std::int64_t>(sums[0]);
  bits[1] = std::bit_cast<std::int64_t>(sums[1]);
}

void cast(const Tensor& x, Tensor& y) {
  constexpr const char* op = "cast";
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"x", &x}, {"y", &y}}) {
    RUCHE_REQUIRE(t->defined()) << op << ": " << name << " is not given";
    const DType d = t->dtype();
    RUCHE_REQUIRE(d == DType::f32 || d == DType::bf16 || d == DType::f16)
        << op << ": " << name << " must be f32, bf16 or f16, got " << t->str();
    RUCHE_REQUIRE(t->is_contiguous())
        << op << ": " << name << " " << t->str() << " is not contiguous";
  }
  check_same_shape_as(op, "y", y, "x", x);
  // Element-wise in memory order; only CUDA casts between layouts (a 16-bit nhwc weight copy).
  RUCHE_CHECK(x.layout() == y.layout())
      << op << ": " << x.str() << " -> " << y.str() << " changes the layout (ops::reorder does)";
  const std::int64_t n = x.numel();
  const DType from = x.dtype(), to = y.dtype();
  if (from == to) {
    if (!x.shares_storage(y) || x.offset() != y.offset()) y.copy_from(x);
    return;
  }
  // Blocks of the bulk loops of half.h (F16C where the CPU has it), one block per iteration.
  constexpr std::int64_t kBlock = 4096;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  const void* src = x.raw_data();
  void* dst = y.raw_data();
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t begin = b * kBlock, len = std::min(kBlock, n - begin);
    float widened[kBlock];
    const float* f32 = nullptr;
    if (from == DType::f32) {
      f32 = static_cast<const float*>(src) + begin;
    } else {
      const auto* h = static_cast<const std::uint16_t*>(src) + begin;
      float* out = to == DType::f32 ? static_cast<float*>(dst) + begin : widened;
      half::widen(from, h, out, len);
      if (to == DType::f32) continue;
      f32 = widened;  // bf16 <-> f16 through f32: widening is exact, so this rounds once
    }
    half::narrow(to, f32, static_cast<std::uint16_t*>(dst) + begin, len, 1.0f);
  }
}

}  // namespace ruche::ops::cpu
