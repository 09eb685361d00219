// The CUDA transposed convolution (cuDNN backward data) and upsampling (our kernels) against
// their CPU twins (oneDNN deconvolution, the CPU loops) on random inputs: forward, backward data,
// backward weights and bias; stride, padding, output padding, dilation, groups, depthwise; nearest
// and bilinear both ways of align_corners, by scale and by size, up and down; bf16 and f16 data;
// reruns bit-identical; the argument checks. Strict fp32 (the default GpuMath).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

using testing::empty_gpu;
using testing::error_of;
using testing::on_cpu;
using testing::on_gpu;
using testing::random_tensor;

constexpr double kConvTol = 1e-4;  // cuDNN's algorithms sum in other orders than oneDNN
constexpr double kTol = 1e-5;

struct DeconvCase {
  const char* name;
  Shape x, w;  // w: [C_in, C_out / groups, kh, kw]
  ops::Deconv2dParams p;
  bool bias;
};

ops::Deconv2dParams dparams(int sh, int sw, int ph, int pw, int oph = 0, int opw = 0,
                            int dilation = 1, int groups = 1) {
  ops::Deconv2dParams p;
  p.stride_h = sh, p.stride_w = sw, p.pad_h = ph, p.pad_w = pw;
  p.output_padding_h = oph, p.output_padding_w = opw;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

const std::vector<DeconvCase>& deconv_cases() {
  static const std::vector<DeconvCase> cases = {
      {"3x3 pad 1", {2, 3, 6, 6}, {3, 4, 3, 3}, dparams(1, 1, 1, 1), true},
      {"4x4 stride 2 pad 1", {2, 8, 7, 5}, {8, 6, 4, 4}, dparams(2, 2, 1, 1), true},
      {"stride 2 output padding 1", {1, 4, 5, 6}, {4, 3, 3, 3}, dparams(2, 2, 1, 1, 1, 1), true},
      {"stride 3 output padding 2 no pad",
       {2, 2, 4, 3},
       {2, 3, 3, 3},
       dparams(3, 2, 0, 0, 2, 1),
       false},
      {"dilation 2", {2, 3, 6, 5}, {3, 4, 3, 3}, dparams(1, 1, 2, 1, 0, 0, 2), true},
      {"groups 2", {2, 4, 5, 6}, {4, 3, 3, 3}, dparams(2, 1, 1, 0, 1, 0, 1, 2), true},
      {"depthwise 2x2 stride 2", {2, 6, 5, 5}, {6, 1, 2, 2}, dparams(2, 2, 0, 0, 0, 0, 1, 6), true},
      {"wide", {4, 32, 8, 8}, {32, 16, 4, 4}, dparams(2, 2, 1, 1), false},
  };
  return cases;
}

struct DeconvResults {
  Tensor y, dx, dw, db;
};

DeconvResults run_deconv(const DeconvCase& c, const Tensor& x, const Tensor& w, const Tensor& b,
                         const Tensor& dy) {
  const Device d = x.device();
  const DType t = x.dtype();
  DeconvResults r;
  r.y = Tensor::empty(ops::deconv2d_output_shape(c.x, c.w, c.p), t, d);
  r.dx = Tensor::empty(c.x, t, d);
  r.dw = Tensor::empty(c.w, t, d);
  if (c.bias) r.db = Tensor::empty({r.y.size(1)}, t, d);
  for (Tensor* out : {&r.y, &r.dx, &r.dw, &r.db}) {  // garbage first: ops overwrite
    if (out->defined() && t == DType::f32) out->fill(123.0f);
  }
  ops::deconv2d_forward(x, w, b, r.y, c.p);
  ops::deconv2d_backward_data(dy, w, r.dx, c.p);
  ops::deconv2d_backward_weights(x, dy, r.dw, r.db, c.p);
  return r;
}

Tensor gpu_or_undefined(const Tensor& t) { return t.defined() ? on_gpu(t) : Tensor(); }

// t (CPU f32) on the GPU as `dtype`, through the cast op.
Tensor gpu_as(const Tensor& t, DType dtype) {
  if (!t.defined()) return Tensor();
  Tensor g = on_gpu(t);
  if (dtype == DType::f32) return g;
  Tensor h = empty_gpu(t.shape(), dtype);
  ops::cast(g, h);
  return h;
}

Tensor cpu_f32(const Tensor& t) {
  if (t.dtype() == DType::f32) return on_cpu(t);
  Tensor f = empty_gpu(t.shape());
  ops::cast(t, f);
  return on_cpu(f);
}

TEST(CudaDeconv, MatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 30;
  for (const DeconvCase& c : deconv_cases()) {
    SCOPED_TRACE(c.name);
    const Tensor x = random_tensor(c.x, seed += 4), w = random_tensor(c.w, seed + 1);
    const Shape y_shape = ops::deconv2d_output_shape(c.x, c.w, c.p);
    const Tensor b = c.bias ? random_tensor({y_shape[1]}, seed + 2) : Tensor();
    const Tensor dy = random_tensor(y_shape, seed + 3);
    const DeconvResults cpu = run_deconv(c, x, w, b, dy);
    const DeconvResults gpu = run_deconv(c, on_gpu(x), on_gpu(w), gpu_or_undefined(b), on_gpu(dy));
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.y), cpu.y, kConvTol);
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.dx), cpu.dx, kConvTol);
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.dw), cpu.dw, kConvTol);
    if (c.bias) {
      EXPECT_TENSORS_CLOSE(on_cpu(gpu.db), cpu.db, kTol);
    }
  }
}

// bf16 / f16 data (fp32 compute): within the rounding of the inputs and the outputs.
TEST(CudaDeconv, HalfPrecisionMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  const DeconvCase& c = deconv_cases()[2];
  const Tensor x = random_tensor(c.x, 70), w = random_tensor(c.w, 71);
  const Shape y_shape = ops::deconv2d_output_shape(c.x, c.w, c.p);
  const Tensor b = random_tensor({y_shape[1]}, 72), dy = random_tensor(y_shape, 73);
  const DeconvResults cpu = run_deconv(c, x, w, b, dy);
  for (DType t : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(t));
    const DeconvResults gpu =
        run_deconv(c, gpu_as(x, t), gpu_as(w, t), gpu_as(b, t), gpu_as(dy, t));
    const double tol = t == DType::bf16 ? 2e-2 : 3e-3;
    EXPECT_TENSORS_CLOSE(cpu_f32(gpu.y), cpu.y, tol);
    EXPECT_TENSORS_CLOSE(cpu_f32(gpu.dx), cpu.dx, tol);
    EXPECT_TENSORS_CLOSE(cpu_f32(gpu.dw), cpu.dw, tol);
    EXPECT_TENSORS_CLOSE(cpu_f32(gpu.db), cpu.db, tol);
  }
}

TEST(CudaDeconv, ArgumentChecks) {
  RUCHE_REQUIRE_CUDA();
  const ops::Deconv2dParams p = dparams(2, 2, 1, 1);
  const Tensor x = empty_gpu({2, 3, 4, 4}), w = empty_gpu({3, 5, 4, 4});
  Tensor y = empty_gpu({2, 5, 8, 7});
  const std::string bad_y = error_of([&] { ops::deconv2d_forward(x, w, Tensor(), y, p); });
  EXPECT_EQ(bad_y.rfind("deconv2d_forward: y has shape [2, 5, 8, 7]", 0), 0u) << bad_y;
  // output padding >= stride (allowed by a larger dilation) is CPU-only.
  const ops::Deconv2dParams wide = dparams(1, 1, 0, 0, 1, 1, 2);
  Tensor y2 = empty_gpu(ops::deconv2d_output_shape({2, 3, 4, 4}, {3, 5, 4, 4}, wide));
  const std::string unsupported =
      error_of([&] { ops::deconv2d_forward(x, w, Tensor(), y2, wide); });
  EXPECT_NE(unsupported.find("not supported on CUDA"), std::string::npos) << unsupported;
}

struct UpsampleCase {
  const char* name;
  Shape x, y;
  ops::UpsampleMode mode;
  bool align_corners;
  float scale_h, scale_w;
};

const std::vector<UpsampleCase>& upsample_cases() {
  using M = ops::UpsampleMode;
  static const std::vector<UpsampleCase> cases = {
      {"nearest x2", {2, 3, 5, 6}, {2, 3, 10, 12}, M::nearest, false, 2, 2},
      {"nearest x1.5 x2.5", {2, 2, 5, 7}, {2, 2, 7, 17}, M::nearest, false, 1.5f, 2.5f},
      {"nearest size", {1, 3, 5, 4}, {1, 3, 7, 11}, M::nearest, false, 0, 0},
      {"nearest down", {1, 2, 9, 8}, {1, 2, 4, 3}, M::nearest, false, 0, 0},
      {"bilinear x2", {2, 3, 5, 6}, {2, 3, 10, 12}, M::bilinear, false, 2, 2},
      {"bilinear x2 align_corners", {2, 3, 5, 6}, {2, 3, 10, 12}, M::bilinear, true, 2, 2},
      {"bilinear size", {2, 2, 4, 6}, {2, 2, 9, 7}, M::bilinear, false, 0, 0},
      {"bilinear size align_corners", {2, 2, 4, 6}, {2, 2, 9, 7}, M::bilinear, true, 0, 0},
      {"bilinear down", {1, 3, 9, 10}, {1, 3, 4, 3}, M::bilinear, false, 0, 0},
      {"bilinear large x4", {4, 16, 32, 32}, {4, 16, 128, 128}, M::bilinear, false, 4, 4},
  };
  return cases;
}

ops::UpsampleParams uparams(const UpsampleCase& c) {
  ops::UpsampleParams p;
  p.mode = c.mode;
  p.align_corners = c.align_corners;
  p.scale_h = c.scale_h;
  p.scale_w = c.scale_w;
  return p;
}

TEST(CudaUpsample, MatchesCpuAndRerunsBitIdentical) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 50;
  for (const UpsampleCase& c : upsample_cases()) {
    SCOPED_TRACE(c.name);
    const ops::UpsampleParams p = uparams(c);
    const Tensor x = random_tensor(c.x, seed += 2), dy = random_tensor(c.y, seed + 1);
    Tensor y = Tensor::empty(c.y), dx = Tensor::empty(c.x);
    ops::upsample2d_forward(x, y, p);
    ops::upsample2d_backward(dy, dx, p);
    Tensor gy = empty_gpu(c.y), gdx = empty_gpu(c.x);
    gy.fill(123.0f);
    gdx.fill(123.0f);
    ops::upsample2d_forward(on_gpu(x), gy, p);
    ops::upsample2d_backward(on_gpu(dy), gdx, p);
    // Same source indices and weights as the CPU: forward exact up to the order of 4 products.
    EXPECT_TENSORS_CLOSE(on_cpu(gy), y, 1e-6);
    EXPECT_TENSORS_CLOSE(on_cpu(gdx), dx, 1e-6);
    Tensor gdx2 = empty_gpu(c.x);
    ops::upsample2d_backward(on_gpu(dy), gdx2, p);
    testing::expect_same_elements(on_cpu(gdx2), on_cpu(gdx));
  }
}

TEST(CudaUpsample, HalfPrecisionMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  for (const UpsampleCase& c : {upsample_cases()[1], upsample_cases()[5]}) {
    SCOPED_TRACE(c.name);
    const ops::UpsampleParams p = uparams(c);
    const Tensor x = random_tensor(c.x, 80), dy = random_tensor(c.y, 81);
    Tensor y = Tensor::empty(c.y), dx = Tensor::empty(c.x);
    ops::upsample2d_forward(x, y, p);
    ops::upsample2d_backward(dy, dx, p);
    for (DType t : {DType::bf16, DType::f16}) {
      SCOPED_TRACE(dtype_name(t));
      Tensor gy = empty_gpu(c.y, t), gdx = empty_gpu(c.x, t);
      ops::upsample2d_forward(gpu_as(x, t), gy, p);
      ops::upsample2d_backward(gpu_as(dy, t), gdx, p);
      const double tol = t == DType::bf16 ? 1e-2 : 2e-3;
      EXPECT_TENSORS_CLOSE(cpu_f32(gy), y, tol);
      EXPECT_TENSORS_CLOSE(cpu_f32(gdx), dx, tol);
    }
  }
}

TEST(CudaUpsample, ArgumentChecks) {
  RUCHE_REQUIRE_CUDA();
  Tensor y = empty_gpu({2, 4, 8, 8});
  const std::string bad_c = error_of([&] {
    ops::upsample2d_forward(empty_gpu({2, 3, 4, 4}), y, ops::UpsampleParams{});
  });
  EXPECT_EQ(bad_c.rfind("upsample2d_forward: y [2, 4, 8, 8] and x [2, 3, 4, 4] differ", 0), 0u)
      << bad_c;
  const std::string bad_dtype = error_of([&] {
    ops::upsample2d_forward(empty_gpu({2, 4, 4, 4}, DType::i32), y, ops::UpsampleParams{});
  });
  EXPECT_EQ(bad_dtype.rfind("upsample2d_forward: x must be f32, bf16 or f16", 0), 0u) << bad_dtype;
}

}  // namespace
}  // namespace ruche
