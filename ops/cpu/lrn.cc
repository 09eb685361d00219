// Local response normalisation of [N, C, H, W] (ops.h): across channels (PyTorch's
// LocalResponseNorm) or within a channel (Caffe's WITHIN_CHANNEL). Sums of squares run in float
// over at most size (size^2) values; backward recomputes dy * y / scale per window, so it needs
// no workspace.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {
namespace {

// The window of index i along an axis of length len: [i - pre, i - pre + size) clipped.
struct Window {
  int size, pre;
  std::int64_t lo(std::int64_t i) const { return std::max<std::int64_t>(i - pre, 0); }
  std::int64_t hi(std::int64_t i, std::int64_t len) const {
    return std::min<std::int64_t>(i - pre + size, len);
  }
  // The windows holding i: those of j in [i + pre - size + 1, i + pre].
  std::int64_t holders_lo(std::int64_t i) const {
    return std::max<std::int64_t>(i + pre - size + 1, 0);
  }
  std::int64_t holders_hi(std::int64_t i, std::int64_t len) const {
    return std::min<std::int64_t>(i + pre + 1, len);
  }
};

Window window_of(const LrnParams& p) {
  return {p.size, p.region == LrnRegion::across_channels ? p.size / 2 : (p.size - 1) / 2};
}

float count_of(const LrnParams& p) {
  return p.region == LrnRegion::across_channels ? static_cast<float>(p.size)
                                                : static_cast<float>(p.size) * p.size;
}

void check_lrn(const char* op, const Tensor& x, const LrnParams& p) {
  RUCHE_REQUIRE(x.ndim() == 4) << op << ": x must be [N, C, H, W], got " << x.str();
  RUCHE_REQUIRE(p.size >= 1) << op << ": size must be >= 1, got " << p.size;
}

}  // namespace

void lrn_forward(const Tensor& x, Tensor& y, Tensor& scale, const LrnParams& p) {
  const char* op = "lrn_forward";
  check_dense(op, "x", x);
  check_dense(op, "y", y);
  check_dense(op, "scale", scale);
  check_lrn(op, x, p);
  check_same_shape_as(op, "y", y, "x", x);
  check_same_shape_as(op, "scale", scale, "x", x);
  const std::int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), HW = H * W;
  const Window win = window_of(p);
  const float a = p.alpha / count_of(p);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  float* ps = scale.data<float>();
  const bool across = p.region == LrnRegion::across_channels;
#pragma omp parallel for if (x.numel() >= kParallelMin)
  for (std::int64_t nc = 0; nc < N * C; ++nc) {
    const std::int64_t n = nc / C, c = nc % C;
    const float* plane = px + nc * HW;
    for (std::int64_t h = 0; h < H; ++h) {
      for (std::int64_t w = 0; w < W; ++w) {
        float sum = 0;
        if (across) {
          for (std::int64_t k = win.lo(c); k < win.hi(c, C); ++k) {
            const float v = px[(n * C + k) * HW + h * W + w];
            sum += v * v;
          }
        } else {
          for (std::int64_t i = win.lo(h); i < win.hi(h, H); ++i) {
            for (std::int64_t j = win.lo(w); j < win.hi(w, W); ++j) {
              const float v = plane[i * W + j];
              sum += v * v;
            }
          }
        }
        const std::int64_t at = nc * HW + h * W + w;
        ps[at] = p.k + a * sum;
      }
    }
  }
  // y after every scale: y may not alias x (scale reads neighbours).
  const std::int64_t total = x.numel();
#pragma omp parallel for if (total >= kParallelMin)
  for (std::int64_t i = 0; i < total; ++i) py[i] = px[i] * std::pow(ps[i], -p.beta);
}

void lrn_backward(const Tensor& x, const Tensor& y, const Tensor& scale, const Tensor& dy,
                  Tensor& dx, const LrnParams& p) {
  const char* op = "lrn_backward";
  check_dense(op, "x", x);
  check_dense(op, "y", y);
  check_dense(op, "scale", scale);
  check_dense(op, "dy", dy);
  check_dense(op, "dx", dx);
  check_lrn(op, x, p);
  check_same_shape_as(op, "y", y, "x", x);
  check_same_shape_as(op, "scale", scale, "x", x);
  check_same_shape_as(op, "dy", dy, "x", x);
  check_same_shape_as(op, "dx", dx, "x", x);
  const std::int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), HW = H * W;
  const Window win = window_of(p);
  const float coeff = 2.0f * p.alpha * p.beta / count_of(p);
  const float* px = x.data<float>();
  const float* py = y.data<float>();
  const float* ps = scale.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  const bool across = p.region == LrnRegion::across_channels;
  auto t = [&](std::int64_t i) { return pdy[i] * py[i] / ps[i]; };
#pragma omp parallel for if (x.numel() >= kParallelMin)
  for (std::int64_t nc = 0; nc < N * C; ++nc) {
    const std::int64_t n = nc / C, c = nc % C;
    for (std::int64_t h = 0; h < H; ++h) {
      for (std::int64_t w = 0; w < W; ++w) {
        float sum = 0;
        if (across) {
          for (std::int64_t k = win.holders_lo(c); k < win.holders_hi(c, C); ++k) {
            sum += t((n * C + k) * HW + h * W + w);
          }
        } else {
          for (std::int64_t i = win.holders_lo(h); i < win.holders_hi(h, H); ++i) {
            for (std::int64_t j = win.holders_lo(w); j < win.holders_hi(w, W); ++j) {
              sum += t(nc * HW + i * W + j);
            }
          }
        }
        const std::int64_t at = nc * HW + h * W + w;
        pdx[at] = pdy[at] * std::pow(ps[at], -p.beta) - coeff * px[at] * sum;
      }
    }
  }
}

}  // namespace ruche::ops::cpu
