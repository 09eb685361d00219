// Nearest and bilinear upsampling of NCHW planes, PyTorch's semantics (ops/upsample_index.h).
// Plain loops, one plane per iteration; backward scatters each output's gradient into its
// inputs in output order, so a thread count gives the same bits every time.
#include <algorithm>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/op_checks.h"
#include "ops/upsample_index.h"

namespace ruche::ops::cpu {
namespace {

constexpr TensorCheck kCheck = [](const char* op, const char* name, const Tensor& t,
                                  const Tensor&) { check_dense(op, name, t); };

}  // namespace

void upsample2d_forward(const Tensor& x, Tensor& y, const UpsampleParams& p) {
  check_upsample2d_args("upsample2d_forward", x, "x", y, "y", p, kCheck);
  const std::int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  const std::int64_t OH = y.size(2), OW = y.size(3);
  const UpsampleAxis ah = upsample_axis(H, OH, p.scale_h, p);
  const UpsampleAxis aw = upsample_axis(W, OW, p.scale_w, p);
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
#pragma omp parallel for schedule(static) if (y.numel() >= kParallelMin)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const float* xp = xd + plane * H * W;
    float* yp = yd + plane * OH * OW;
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      if (!ah.bilinear) {
        const float* row = xp + nearest_source(ah, oh) * W;
        for (std::int64_t ow = 0; ow < OW; ++ow) yp[oh * OW + ow] = row[nearest_source(aw, ow)];
        continue;
      }
      const LinearTap th = linear_source(ah, oh);
      const float* r0 = xp + th.i0 * W;
      const float* r1 = xp + th.i1 * W;
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const LinearTap tw = linear_source(aw, ow);
        yp[oh * OW + ow] = th.l0 * (tw.l0 * r0[tw.i0] + tw.l1 * r0[tw.i1]) +
                           th.l1 * (tw.l0 * r1[tw.i0] + tw.l1 * r1[tw.i1]);
      }
    }
  }
}

void upsample2d_backward(const Tensor& dy, Tensor& dx, const UpsampleParams& p) {
  check_upsample2d_args("upsample2d_backward", dx, "dx", dy, "dy", p, kCheck);
  const std::int64_t planes = dx.size(0) * dx.size(1), H = dx.size(2), W = dx.size(3);
  const std::int64_t OH = dy.size(2), OW = dy.size(3);
  const UpsampleAxis ah = upsample_axis(H, OH, p.scale_h, p);
  const UpsampleAxis aw = upsample_axis(W, OW, p.scale_w, p);
  const float* dyd = dy.data<float>();
  float* dxd = dx.data<float>();
#pragma omp parallel for schedule(static) if (dy.numel() >= kParallelMin)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const float* gp = dyd + plane * OH * OW;
    float* dp = dxd + plane * H * W;
    std::fill(dp, dp + H * W, 0.0f);
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      if (!ah.bilinear) {
        float* row = dp + nearest_source(ah, oh) * W;
        for (std::int64_t ow = 0; ow < OW; ++ow) row[nearest_source(aw, ow)] += gp[oh * OW + ow];
        continue;
      }
      const LinearTap th = linear_source(ah, oh);
      float* r0 = dp + th.i0 * W;
      float* r1 = dp + th.i1 * W;
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const LinearTap tw = linear_source(aw, ow);
        const float g = gp[oh * OW + ow];
        r0[tw.i0] += th.l0 * tw.l0 * g;
        r0[tw.i1] += th.l0 * tw.l1 * g;
        r1[tw.i0] += th.l1 * tw.l0 * g;
        r1[tw.i1] += th.l1 * tw.l1 * g;
      }
    }
  }
}

}  // namespace ruche::ops::cpu
