// Ops that read a tensor as [outer, C, inner] around one axis: softmax over that axis, copying a
// block along it (Concat), a per-channel scale and shift (Scale), and the element-wise power.
#include <cmath>
#include <cstdint>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/axis_split.h"
#include "ops/op_checks.h"

namespace ruche::ops::cpu {
namespace {

using ops::AxisSplit;
using ops::split_at;

}  // namespace

void softmax_axis_forward(const Tensor& x, Tensor& y, int axis) {
  const char* op = "softmax_axis_forward";
  check_dense(op, "input", x);
  check_dense(op, "output", y);
  check_same_shape_as(op, "output", y, "input", x);
  const AxisSplit s = split_at(op, x, axis);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const std::int64_t C = s.channels, inner = s.inner;
#pragma omp parallel for if (x.numel() >= kParallelMin)
  for (std::int64_t r = 0; r < s.outer * inner; ++r) {
    const std::int64_t base = (r / inner) * C * inner + r % inner;
    const float* xr = px + base;
    float* yr = py + base;
    float m = -INFINITY;
    for (std::int64_t c = 0; c < C; ++c) m = std::fmax(m, xr[c * inner]);
    double sum = 0;
    for (std::int64_t c = 0; c < C; ++c) {
      yr[c * inner] = std::exp(xr[c * inner] - m);  // x may be y: read before overwritten
      sum += yr[c * inner];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (std::int64_t c = 0; c < C; ++c) yr[c * inner] *= inv;
  }
}

void softmax_axis_backward(const Tensor& y, const Tensor& dy, Tensor& dx, int axis) {
  const char* op = "softmax_axis_backward";
  check_dense(op, "y", y);
  check_dense(op, "dy", dy);
  check_dense(op, "dx", dx);
  check_same_shape_as(op, "dy", dy, "y", y);
  check_same_shape_as(op, "dx", dx, "y", y);
  const AxisSplit s = split_at(op, y, axis);
  const float* py = y.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  const std::int64_t C = s.channels, inner = s.inner;
#pragma omp parallel for if (y.numel() >= kParallelMin)
  for (std::int64_t r = 0; r < s.outer * inner; ++r) {
    const std::int64_t base = (r / inner) * C * inner + r % inner;
    double dot = 0;
    for (std::int64_t c = 0; c < C; ++c) {
      dot += static_cast<double>(py[base + c * inner]) * pdy[base + c * inner];
    }
    const float d = static_cast<float>(dot);
    for (std::int64_t c = 0; c < C; ++c) {
      const std::int64_t i = base + c * inner;
      pdx[i] = py[i] * (pdy[i] - d);
    }
  }
}

namespace {

// Copies `rows` of `row` elements: dst[r * dst_stride + i] = src[r * src_stride + i].
void copy_rows(const float* src, std::int64_t src_stride, float* dst, std::int64_t dst_stride,
               std::int64_t rows, std::int64_t row) {
#pragma omp parallel for if (rows * row >= kParallelMin)
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * src_stride;
    float* d = dst + r * dst_stride;
    for (std::int64_t i = 0; i < row; ++i) d[i] = s[i];
  }
}

}  // namespace

void copy_into_axis(const Tensor& part, Tensor& whole, int axis, std::int64_t offset) {
  const char* op = "copy_into_axis";
  check_dense(op, "part", part);
  check_dense(op, "whole", whole);
  const AxisSplit s = check_axis_block(op, part, whole, axis, offset);
  const std::int64_t row = part.size(axis) * s.inner;
  copy_rows(part.data<float>(), row, whole.data<float>() + offset * s.inner, s.channels * s.inner,
            s.outer, row);
}

void copy_from_axis(const Tensor& whole, Tensor& part, int axis, std::int64_t offset) {
  const char* op = "copy_from_axis";
  check_dense(op, "whole", whole);
  check_dense(op, "part", part);
  const AxisSplit s = check_axis_block(op, part, whole, axis, offset);
  const std::int64_t row = part.size(axis) * s.inner;
  copy_rows(whole.data<float>() + offset * s.inner, s.channels * s.inner, part.data<float>(), row,
            s.outer, row);
}

namespace {

// scale's shape equals x's dims from axis on; returns the split around them.
AxisSplit check_channel_scale(const char* op, const Tensor& x, const Tensor& scale, int axis) {
  RUCHE_REQUIRE(axis >= 0 && axis + scale.ndim() <= x.ndim())
      << op << ": a scale " << scale.shape().str() << " at axis " << axis << " does not fit "
      << x.shape().str();
  for (int d = 0; d < scale.ndim(); ++d) {
    RUCHE_REQUIRE(scale.size(d) == x.size(axis + d))
        << op << ": scale " << scale.shape().str() << " does not match dims " << axis << ".."
        << axis + scale.ndim() - 1 << " of " << x.shape().str();
  }
  return split_at(op, x, axis, scale.ndim());
}

}  // namespace

void channel_scale_forward(const Tensor& x, const Tensor& scale, const Tensor& bias, Tensor& y,
                           int axis) {
  const char* op = "channel_scale_forward";
  check_dense(op, "x", x);
  check_dense(op, "scale", scale);
  check_dense(op, "y", y);
  check_same_shape_as(op, "y", y, "x", x);
  const AxisSplit s = check_channel_scale(op, x, scale, axis);
  if (bias.defined()) {
    check_dense(op, "bias", bias);
    check_same_shape_as(op, "bias", bias, "scale", scale);
  }
  const float* px = x.data<float>();
  const float* ps = scale.data<float>();
  const float* pb = bias.defined() ? bias.data<float>() : nullptr;
  float* py = y.data<float>();
  const std::int64_t S = s.channels, inner = s.inner;
#pragma omp parallel for if (x.numel() >= kParallelMin)
  for (std::int64_t r = 0; r < s.outer * S; ++r) {
    const float a = ps[r % S], b = pb ? pb[r % S] : 0.0f;
    const float* xr = px + r * inner;
    float* yr = py + r * inner;
    for (std::int64_t i = 0; i < inner; ++i) yr[i] = xr[i] * a + b;
  }
}

void channel_scale_backward(const Tensor& x, const Tensor& scale, const Tensor& dy, Tensor& dx,
                            Tensor& dscale, Tensor& dbias, int axis) {
  const char* op = "channel_scale_backward";
  check_dense(op, "x", x);
  check_dense(op, "scale", scale);
  check_dense(op, "dy", dy);
  check_same_shape_as(op, "dy", dy, "x", x);
  const AxisSplit s = check_channel_scale(op, x, scale, axis);
  const float* px = x.data<float>();
  const float* ps = scale.data<float>();
  const float* pdy = dy.data<float>();
  const std::int64_t S = s.channels, inner = s.inner, outer = s.outer;
  // The parameter sums first: dx may be dy (an in-place gradient).
  if (dscale.defined() || dbias.defined()) {
    float* pds = nullptr;
    float* pdb = nullptr;
    if (dscale.defined()) {
      check_dense(op, "dscale", dscale);
      check_same_shape_as(op, "dscale", dscale, "scale", scale);
      pds = dscale.data<float>();
    }
    if (dbias.defined()) {
      check_dense(op, "dbias", dbias);
      check_same_shape_as(op, "dbias", dbias, "scale", scale);
      pdb = dbias.data<float>();
    }
#pragma omp parallel for if (x.numel() >= kParallelMin)
    for (std::int64_t c = 0; c < S; ++c) {
      double sum_xdy = 0, sum_dy = 0;
      for (std::int64_t o = 0; o < outer; ++o) {
        const std::int64_t base = (o * S + c) * inner;
        for (std::int64_t i = 0; i < inner; ++i) {
          sum_xdy += static_cast<double>(px[base + i]) * pdy[base + i];
          sum_dy += pdy[base + i];
        }
      }
      if (pds) pds[c] = static_cast<float>(sum_xdy);
      if (pdb) pdb[c] = static_cast<float>(sum_dy);
    }
  }
  if (dx.defined()) {
    check_dense(op, "dx", dx);
    check_same_shape_as(op, "dx", dx, "x", x);
    float* pdx = dx.data<float>();
#pragma omp parallel for if (x.numel() >= kParallelMin)
    for (std::int64_t r = 0; r < outer * S; ++r) {
      const float a = ps[r % S];
      for (std::int64_t i = 0; i < inner; ++i) pdx[r * inner + i] = pdy[r * inner + i] * a;
    }
  }
}

void power_forward(const Tensor& x, Tensor& y, const PowerParams& p) {
  const char* op = "power_forward";
  check_dense(op, "x", x);
  check_dense(op, "y", y);
  check_same_shape_as(op, "y", y, "x", x);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const std::int64_t n = x.numel();
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) py[i] = std::pow(p.shift + p.scale * px[i], p.power);
}

void power_backward(const Tensor& x, const Tensor& dy, Tensor& dx, const PowerParams& p) {
  const char* op = "power_backward";
  check_dense(op, "x", x);
  check_dense(op, "dy", dy);
  check_dense(op, "dx", dx);
  check_same_shape_as(op, "dy", dy, "x", x);
  check_same_shape_as(op, "dx", dx, "x", x);
  const float* px = x.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  const std::int64_t n = x.numel();
  const float k = p.power * p.scale;
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) {
    pdx[i] =
        p.power == 0.0f ? 0.0f : pdy[i] * k * std::pow(p.shift + p.scale * px[i], p.power - 1.0f);
  }
}

}  // namespace ruche::ops::cpu
