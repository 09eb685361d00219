// Max, average and global average pooling over NCHW planes, PyTorch's semantics (window clipping,
// ceil_mode, count_include_pad, argmax indices h * W + w). Max and average pooling run on oneDNN
// (pooling_onednn.cc); the plain loops here, one plane per iteration, are the reference path
// (RUCHE_CPU_REFERENCE=1), average pooling's where oneDNN would divide otherwise, and the
// scatter of max pooling's backward on both.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/pooling_onednn.h"

namespace ruche::ops {
namespace {

std::int64_t pooled_size(std::int64_t in, int k, int s, int pad, bool ceil_mode) {
  const std::int64_t span = in + 2 * pad - k;
  std::int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  // ceil_mode: the last window must start inside the input or the left padding.
  if (ceil_mode && (out - 1) * s >= in + pad) --out;
  return out;
}

}  // namespace

Shape pool2d_output_shape(const Shape& x, const Pool2dParams& p) {
  RUCHE_REQUIRE(x.ndim() == 4) << "pool2d: input must be [N, C, H, W], got " << x.str();
  RUCHE_REQUIRE(p.kernel_h > 0 && p.kernel_w > 0)
      << "pool2d: kernel must be positive, got " << p.kernel_h << "x" << p.kernel_w;
  RUCHE_REQUIRE(p.stride_h > 0 && p.stride_w > 0)
      << "pool2d: stride must be positive, got " << p.stride_h << "x" << p.stride_w;
  // PyTorch's rule: padding beyond half the kernel would give windows of padding only.
  RUCHE_REQUIRE(p.pad_h >= 0 && p.pad_w >= 0 && 2 * p.pad_h <= p.kernel_h &&
                2 * p.pad_w <= p.kernel_w)
      << "pool2d: padding " << p.pad_h << "x" << p.pad_w
      << " must be between 0 and half the kernel " << p.kernel_h << "x" << p.kernel_w;
  RUCHE_REQUIRE(x[2] + 2 * p.pad_h >= p.kernel_h && x[3] + 2 * p.pad_w >= p.kernel_w)
      << "pool2d: kernel " << p.kernel_h << "x" << p.kernel_w << " is larger than the padded input "
      << x.str() << " with padding " << p.pad_h << "x" << p.pad_w;
  return Shape{x[0], x[1], pooled_size(x[2], p.kernel_h, p.stride_h, p.pad_h, p.ceil_mode),
               pooled_size(x[3], p.kernel_w, p.stride_w, p.pad_w, p.ceil_mode)};
}

bool avg_pool2d_takes_blocked(const Shape& x, const Pool2dParams& p) {
  return cpu::onednn::avg_pool_fits(x, pool2d_output_shape(x, p), p);
}

}  // namespace ruche::ops

namespace ruche::ops::cpu {
namespace {

std::string describe(const Pool2dParams& p) {
  std::ostringstream s;
  s << "kernel " << p.kernel_h << "x" << p.kernel_w << " stride " << p.stride_h << "x" << p.stride_w
    << " padding " << p.pad_h << "x" << p.pad_w << (p.ceil_mode ? " ceil_mode" : "");
  return s.str();
}

// x (the input, [N, C, H, W]) and y (the output) are dense f32 and fit p.
void check_pool(const char* op, const char* x_arg, const Tensor& x, const char* y_arg,
                const Tensor& y, const Pool2dParams& p) {
  check_dense(op, x_arg, x);
  check_dense(op, y_arg, y);
  RUCHE_REQUIRE(x.ndim() == 4) << op << ": " << x_arg << " must be [N, C, H, W], got " << x.str();
  const Shape expected = pool2d_output_shape(x.shape(), p);
  RUCHE_REQUIRE(y.shape() == expected)
      << op << ": " << y_arg << " has shape " << y.shape().str() << " but " << x_arg << " "
      << x.shape().str() << " with " << describe(p) << " gives " << expected.str();
}

// The loops read plain NCHW; oneDNN takes the blocked layouts (the net plans pooling that runs
// on the loops, average pooling oneDNN would divide otherwise, on plain tensors).
void require_plain(const char* op, const Tensor& a, const Tensor& b) {
  RUCHE_CHECK(a.is_plain() && b.is_plain())
      << op << ": the loops take plain tensors, got " << a.str() << " and " << b.str();
}

// One window, clipped to the input: rows [h0, h1), columns [w0, w1).
struct Window {
  std::int64_t h0, h1, w0, w1;
};

Window window_at(std::int64_t oh, std::int64_t ow, std::int64_t H, std::int64_t W,
                 const Pool2dParams& p) {
  const std::int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
  return {std::max<std::int64_t>(h0, 0), std::min<std::int64_t>(h0 + p.kernel_h, H),
          std::max<std::int64_t>(w0, 0), std::min<std::int64_t>(w0 + p.kernel_w, W)};
}

// The divisor of an average window: PyTorch counts padding cells (when asked) but never the cells
// past the right padding that ceil_mode adds.
std::int64_t avg_divisor(std::int64_t oh, std::int64_t ow, std::int64_t H, std::int64_t W,
                         const Pool2dParams& p) {
  if (!p.count_include_pad) {
    const Window w = window_at(oh, ow, H, W, p);
    return (w.h1 - w.h0) * (w.w1 - w.w0);
  }
  const std::int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
  const std::int64_t h1 = std::min<std::int64_t>(h0 + p.kernel_h, H + p.pad_h);
  const std::int64_t w1 = std::min<std::int64_t>(w0 + p.kernel_w, W + p.pad_w);
  return (h1 - h0) * (w1 - w0);
}

}  // namespace

void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dParams& p) {
  const char* op = "max_pool2d_forward";
  check_pool(op, "input", x, "output", y, p);
  check_dense(op, "indices", indices, DType::i32);
  check_same_shape_as(op, "indices", indices, "output", y);
  const std::int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  const std::int64_t OH = y.size(2), OW = y.size(3);
  RUCHE_REQUIRE(H * W <= std::numeric_limits<std::int32_t>::max())
      << op << ": input plane " << H << "x" << W << " is too large for i32 indices";
  if (!cpu_reference_path()) return onednn::max_pool2d_forward(x, y, indices, p);
  require_plain(op, x, y);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  std::int32_t* pi = indices.data<std::int32_t>();
#pragma omp parallel for if (planes * OH * OW >= kParallelMin)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const float* xp = px + plane * H * W;
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const Window w = window_at(oh, ow, H, W, p);
        std::int64_t best = w.h0 * W + w.w0;
        float best_value = -std::numeric_limits<float>::infinity();
        for (std::int64_t h = w.h0; h < w.h1; ++h) {
          for (std::int64_t c = w.w0; c < w.w1; ++c) {
            const float v = xp[h * W + c];
            // The first maximum wins; a NaN propagates (PyTorch's rule).
            if (v > best_value || std::isnan(v)) {
              best_value = v;
              best = h * W + c;
            }
          }
        }
        const std::int64_t o = plane * OH * OW + oh * OW + ow;
        py[o] = best_value;
        pi[o] = static_cast<std::int32_t>(best);
      }
    }
  }
}

void max_pool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx,
                         const Pool2dParams& p) {
  const char* op = "max_pool2d_backward";
  check_pool(op, "dx", dx, "dy", dy, p);
  check_dense(op, "indices", indices, DType::i32);
  check_same_shape_as(op, "indices", indices, "dy", dy);
  RUCHE_CHECK(dx.layout() == dy.layout())
      << op << ": dx " << dx.str() << " and dy " << dy.str() << " in different layouts";
  // Planes of `block` channels, the channel innermost (block 1: plain NCHW); indices are laid
  // out as dy.
  const std::int64_t block = channel_block(dx.layout(), dx.size(1));
  const std::int64_t planes = dx.size(0) * dx.size(1) / block, HW = dx.size(2) * dx.size(3);
  const std::int64_t OHW = dy.size(2) * dy.size(3);
  const float* pdy = dy.data<float>();
  const std::int32_t* pi = indices.data<std::int32_t>();
  float* pdx = dx.data<float>();
  bool bad_index = false;
  // Each plane is scattered by one thread, so overlapping windows need no atomics.
#pragma omp parallel for if (dx.numel() >= kParallelMin) reduction(|| : bad_index)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    float* dxp = pdx + plane * HW * block;
    std::fill(dxp, dxp + HW * block, 0.0f);
    for (std::int64_t o = plane * OHW * block; o < (plane + 1) * OHW * block; ++o) {
      const std::int32_t i = pi[o];
      if (i < 0 || i >= HW) {
        bad_index = true;
        continue;
      }
      dxp[i * block + o % block] += pdy[o];
    }
  }
  RUCHE_REQUIRE(!bad_index) << op << ": indices hold a position outside the " << dx.size(2) << "x"
                            << dx.size(3) << " input plane";
}

void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dParams& p) {
  check_pool("avg_pool2d_forward", "input", x, "output", y, p);
  if (!cpu_reference_path() && onednn::avg_pool_fits(x.shape(), y.shape(), p)) {
    return onednn::avg_pool2d_forward(x, y, p);
  }
  require_plain("avg_pool2d_forward", x, y);
  const std::int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  const std::int64_t OH = y.size(2), OW = y.size(3);
  const float* px = x.data<float>();
  float* py = y.data<float>();
#pragma omp parallel for if (planes * OH * OW >= kParallelMin)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const float* xp = px + plane * H * W;
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const Window w = window_at(oh, ow, H, W, p);
        float sum = 0.0f;
        for (std::int64_t h = w.h0; h < w.h1; ++h) {
          for (std::int64_t c = w.w0; c < w.w1; ++c) sum += xp[h * W + c];
        }
        py[plane * OH * OW + oh * OW + ow] = sum / static_cast<float>(avg_divisor(oh, ow, H, W, p));
      }
    }
  }
}

void avg_pool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dParams& p) {
  check_pool("avg_pool2d_backward", "dx", dx, "dy", dy, p);
  if (!cpu_reference_path() && onednn::avg_pool_fits(dx.shape(), dy.shape(), p)) {
    return onednn::avg_pool2d_backward(dy, dx, p);
  }
  require_plain("avg_pool2d_backward", dy, dx);
  const std::int64_t planes = dx.size(0) * dx.size(1), H = dx.size(2), W = dx.size(3);
  const std::int64_t OH = dy.size(2), OW = dy.size(3);
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
#pragma omp parallel for if (planes * H * W >= kParallelMin)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    float* dxp = pdx + plane * H * W;
    std::fill(dxp, dxp + H * W, 0.0f);
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const Window w = window_at(oh, ow, H, W, p);
        const float g =
            pdy[plane * OH * OW + oh * OW + ow] / static_cast<float>(avg_divisor(oh, ow, H, W, p));
        for (std::int64_t h = w.h0; h < w.h1; ++h) {
          for (std::int64_t c = w.w0; c < w.w1; ++c) dxp[h * W + c] += g;
        }
      }
    }
  }
}

namespace {

void check_global(const char* op, const char* x_arg, const Tensor& x, const char* y_arg,
                  const Tensor& y) {
  check_dense(op, x_arg, x);
  check_dense(op, y_arg, y);
  RUCHE_REQUIRE(x.ndim() == 4) << op << ": " << x_arg << " must be [N, C, H, W], got " << x.str();
  const Shape expected{x.size(0), x.size(1), 1, 1};
  RUCHE_REQUIRE(y.shape() == expected)
      << op << ": " << y_arg << " has shape " << y.shape().str() << " but " << x_arg << " "
      << x.shape().str() << " gives " << expected.str();
}

}  // namespace

void global_avg_pool_forward(const Tensor& x, Tensor& y) {
  check_global("global_avg_pool_forward", "input", x, "output", y);
  const std::int64_t planes = x.size(0) * x.size(1), HW = x.size(2) * x.size(3);
  const float* px = x.data<float>();
  float* py = y.data<float>();
#pragma omp parallel for if (planes * HW >= kParallelMin)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const float* xp = px + plane * HW;
    double sum = 0;  // planes of 56x56 and more: a float sum would drift
    for (std::int64_t i = 0; i < HW; ++i) sum += xp[i];
    py[plane] = static_cast<float>(sum / static_cast<double>(HW));
  }
}

void global_avg_pool_backward(const Tensor& dy, Tensor& dx) {
  check_global("global_avg_pool_backward", "dx", dx, "dy", dy);
  const std::int64_t planes = dx.size(0) * dx.size(1), HW = dx.size(2) * dx.size(3);
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
#pragma omp parallel for if (planes * HW >= kParallelMin)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const float g = pdy[plane] / static_cast<float>(HW);
    std::fill(pdx + plane * HW, pdx + (plane + 1) * HW, g);
  }
}

}  // namespace ruche::ops::cpu
