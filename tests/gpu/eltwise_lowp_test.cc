// bf16 and f16 in the CUDA element-wise and softmax ops (the trainer's --precision bf16|fp16):
// each op against the f32 CPU op on the same rounded inputs, dropout masks identical whatever the
// dtype, and a mix of dtypes rejected.
//
// Tolerances. The inputs are rounded to bf16 / f16 first and the CPU op runs on those very values
// widened to f32 (exactly), so only two things differ: (1) the GPU's f32 arithmetic against the
// CPU's (norm-relative <= 1e-5 in eltwise_test.cc; 2e-5 allowed here), and (2) the one rounding
// of the result on store. Round to nearest even moves a value by at most u = 2^-8 of it in bf16 (8
// significant bits) and u = 2^-11 in f16 (11 bits), so by at most u norm-relative; with (1) the
// bound is u (1 + 2e-5) + 2e-5, taken as u + 3e-5. Where the GPU's f32 arithmetic is the CPU's
// exactly (a select, or one IEEE add or multiply: relu, leaky_relu, heaviside, add, scale,
// dropout), the result must further be the CPU's f32 result rounded once, bit for bit: that
// catches truncation or double rounding, which the tolerance alone would let through.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/half_support.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

using testing::cast_to;
using testing::empty_gpu;
using testing::expect_same_elements;
using testing::on_cpu;
using testing::on_gpu;
using testing::random_tensor;
using testing::rounded_input;
using testing::rounded_once;
using testing::RoundedInput;
using testing::values_of;

struct LowPrecision {
  DType dtype;
  double tol;  // see the top of the file
  const char* name;
};

const LowPrecision kLowPrecisions[] = {
    {DType::bf16, 0x1p-8 + 3e-5, "bf16"},
    {DType::f16, 0x1p-11 + 3e-5, "f16"},
};

// One input of a case: a random f32 tensor in [low, high) rounded to dtype (see rounded_input).
RoundedInput input(const Shape& shape, std::uint32_t seed, DType dtype, float low = -1.0f,
                   float high = 1.0f) {
  return rounded_input(random_tensor(shape, seed, low, high), dtype);
}

struct ActivationCase {
  ops::Activation kind;
  float alpha;
  bool exact;  // f32 math the CPU's bit for bit (see the top of the file)
  const char* name;
};

const ActivationCase kActivations[] = {
    {ops::Activation::relu, 0.0f, true, "relu"},
    {ops::Activation::leaky_relu, 0.1f, true, "leaky_relu"},
    {ops::Activation::sigmoid, 0.0f, false, "sigmoid"},
    {ops::Activation::tanh, 0.0f, false, "tanh"},
};

TEST(CudaOpsLowPrecision, ActivationForwardAndBackwardMatchCpu) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{7, 33, 5};
  for (const auto& lp : kLowPrecisions) {
    for (const auto& c : kActivations) {
      SCOPED_TRACE(std::string(lp.name) + " " + c.name);
      const RoundedInput x = input(shape, 1, lp.dtype, -3.0f, 3.0f);
      const RoundedInput dy = input(shape, 2, lp.dtype);
      Tensor y_gpu = empty_gpu(shape, lp.dtype);
      ops::activation_forward(c.kind, c.alpha, x.gpu, y_gpu);
      Tensor y_cpu = Tensor::empty(shape);
      ops::activation_forward(c.kind, c.alpha, x.cpu, y_cpu);
      const Tensor y = values_of(y_gpu);
      EXPECT_TENSORS_CLOSE(y, y_cpu, lp.tol);
      if (c.exact) expect_same_elements<float>(y, rounded_once(y_cpu, lp.dtype));

      // Backward from the GPU's rounded y, which both sides read.
      Tensor dx_gpu = empty_gpu(shape, lp.dtype);
      ops::activation_backward(c.kind, c.alpha, y_gpu, dy.gpu, dx_gpu);
      Tensor dx_cpu = Tensor::empty(shape);
      ops::activation_backward(c.kind, c.alpha, y, dy.cpu, dx_cpu);
      const Tensor dx = values_of(dx_gpu);
      EXPECT_TENSORS_CLOSE(dx, dx_cpu, lp.tol);
      if (c.exact) expect_same_elements<float>(dx, rounded_once(dx_cpu, lp.dtype));
    }
  }
}

TEST(CudaOpsLowPrecision, ActivationRunsInPlace) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{1000};
  for (const auto& lp : kLowPrecisions) {
    for (const auto& c : kActivations) {
      SCOPED_TRACE(std::string(lp.name) + " " + c.name);
      const RoundedInput x = input(shape, 3, lp.dtype, -2.0f, 2.0f);
      const RoundedInput dy = input(shape, 4, lp.dtype);
      Tensor y = empty_gpu(shape, lp.dtype);
      ops::activation_forward(c.kind, c.alpha, x.gpu, y);
      Tensor t = x.gpu.clone();
      ops::activation_forward(c.kind, c.alpha, t, t);
      expect_same_elements<float>(values_of(t), values_of(y));
      Tensor dx = empty_gpu(shape, lp.dtype);
      ops::activation_backward(c.kind, c.alpha, y, dy.gpu, dx);
      Tensor g = dy.gpu.clone();
      ops::activation_backward(c.kind, c.alpha, t, g, g);  // dx overwrites dy
      expect_same_elements<float>(values_of(g), values_of(dx));
    }
  }
}

TEST(CudaOpsLowPrecision, ReluPassesNanAndNegativeZeroAsTheCpu) {
  RUCHE_REQUIRE_CUDA();
  const Tensor x = Tensor::from_vector({NAN, -0.0f, 0.0f, -2.0f, 3.0f}, {5});
  Tensor y_cpu = Tensor::empty({5});
  ops::activation_forward(ops::Activation::relu, 0, x, y_cpu);
  for (DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    Tensor y_gpu = empty_gpu({5}, dtype);
    ops::activation_forward(ops::Activation::relu, 0, on_gpu(cast_to(x, dtype)), y_gpu);
    const auto got = values_of(y_gpu).to_vector<float>();
    const auto want = y_cpu.to_vector<float>();
    EXPECT_TRUE(std::isnan(got[0]));
    for (std::size_t i = 1; i < want.size(); ++i) {
      EXPECT_EQ(got[i], want[i]) << i;
      EXPECT_EQ(std::signbit(got[i]), std::signbit(want[i])) << i;
    }
  }
}

TEST(CudaOpsLowPrecision, HeavisideMatchesCpuIncludingZeros) {
  RUCHE_REQUIRE_CUDA();
  Tensor x = random_tensor({513}, 5);
  float* px = x.data<float>();
  for (int i = 0; i < 513; i += 7) px[i] = i % 2 ? -0.0f : 0.0f;
  for (const auto& lp : kLowPrecisions) {
    const Tensor xr = cast_to(x, lp.dtype);
    for (float at_zero : {0.0f, 0.5f, 1.0f}) {
      SCOPED_TRACE(std::string(lp.name) + " " + std::to_string(at_zero));
      Tensor y_cpu = Tensor::empty(x.shape());
      ops::heaviside_forward(cast_to(xr, DType::f32), y_cpu, at_zero);
      Tensor y_gpu = empty_gpu(x.shape(), lp.dtype);
      ops::heaviside_forward(on_gpu(xr), y_gpu, at_zero);
      expect_same_elements<float>(values_of(y_gpu), y_cpu);  // 0, 0.5 and 1 are exact
    }
  }
}

TEST(CudaOpsLowPrecision, ArithmeticMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{3, 4, 17, 19};
  for (const auto& lp : kLowPrecisions) {
    SCOPED_TRACE(lp.name);
    const RoundedInput a = input(shape, 6, lp.dtype);
    const RoundedInput b = input(shape, 7, lp.dtype);

    Tensor y_cpu = Tensor::empty(shape);
    ops::add(a.cpu, b.cpu, y_cpu);
    Tensor y_gpu = empty_gpu(shape, lp.dtype);
    ops::add(a.gpu, b.gpu, y_gpu);
    EXPECT_TENSORS_CLOSE(values_of(y_gpu), y_cpu, lp.tol);
    expect_same_elements<float>(values_of(y_gpu), rounded_once(y_cpu, lp.dtype));
    Tensor joined = a.gpu.clone();  // a residual join in place: y is a
    ops::add(joined, b.gpu, joined);
    expect_same_elements<float>(values_of(joined), values_of(y_gpu));

    // y += alpha * x: the GPU may fuse the multiply-add (one rounding less), so tolerance only.
    Tensor acc_cpu = b.cpu.clone();
    ops::axpy(-0.37f, a.cpu, acc_cpu);
    Tensor acc_gpu = b.gpu.clone();
    ops::axpy(-0.37f, a.gpu, acc_gpu);
    EXPECT_TENSORS_CLOSE(values_of(acc_gpu), acc_cpu, lp.tol);

    Tensor s_cpu = a.cpu.clone();
    ops::scale(0.3f, s_cpu);
    Tensor s_gpu = a.gpu.clone();
    ops::scale(0.3f, s_gpu);
    EXPECT_TENSORS_CLOSE(values_of(s_gpu), s_cpu, lp.tol);
    expect_same_elements<float>(values_of(s_gpu), rounded_once(s_cpu, lp.dtype));
  }
}

TEST(CudaOpsLowPrecision, DropoutMasksAreTheSameWhateverTheDtype) {
  RUCHE_REQUIRE_CUDA();
  for (std::int64_t n : {std::int64_t{1001}, (std::int64_t{1} << 20) + 3}) {
    for (float p : {0.0f, 0.3f, 0.9f}) {
      const RngStream stream{777, RngPurpose::dropout, 2, 31, 5};
      const Tensor x = random_tensor({n}, 8);
      Tensor y_cpu = Tensor::empty({n});
      Tensor mask_cpu = Tensor::empty({n}, DType::u8);
      ops::dropout_forward(x, y_cpu, mask_cpu, p, stream);
      Tensor y_f32 = empty_gpu({n}, DType::f32);
      Tensor mask_f32 = empty_gpu({n}, DType::u8);
      ops::dropout_forward(on_gpu(x), y_f32, mask_f32, p, stream);
      for (const auto& lp : kLowPrecisions) {
        SCOPED_TRACE(std::string(lp.name) + " n " + std::to_string(n) + " p " + std::to_string(p));
        const Tensor xr = cast_to(x, lp.dtype);
        Tensor y = empty_gpu({n}, lp.dtype);
        Tensor mask = empty_gpu({n}, DType::u8);
        ops::dropout_forward(on_gpu(xr), y, mask, p, stream);
        expect_same_elements<std::uint8_t>(on_cpu(mask), on_cpu(mask_f32));
        expect_same_elements<std::uint8_t>(on_cpu(mask), mask_cpu);
        // The CPU op on the rounded x, with the mask it draws (the same), rounded once.
        Tensor yr_cpu = Tensor::empty({n});
        Tensor unused_mask = Tensor::empty({n}, DType::u8);
        ops::dropout_forward(cast_to(xr, DType::f32), yr_cpu, unused_mask, p, stream);
        EXPECT_TENSORS_CLOSE(values_of(y), yr_cpu, lp.tol);
        expect_same_elements<float>(values_of(y), rounded_once(yr_cpu, lp.dtype));

        const RoundedInput dy = input({n}, 9, lp.dtype);
        Tensor dx_cpu = Tensor::empty({n});
        ops::dropout_backward(dy.cpu, mask_cpu, dx_cpu, p);
        Tensor dx = empty_gpu({n}, lp.dtype);
        ops::dropout_backward(dy.gpu, mask, dx, p);
        EXPECT_TENSORS_CLOSE(values_of(dx), dx_cpu, lp.tol);
        expect_same_elements<float>(values_of(dx), rounded_once(dx_cpu, lp.dtype));
      }
    }
  }
}

TEST(CudaOpsLowPrecision, SoftmaxMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  // C below, at and above one block's 256 threads. (Not 5000 as in eltwise_test: gradients near
  // 1/C^2 fall into f16's subnormals, where its relative precision ends.)
  for (const auto& lp : kLowPrecisions) {
    for (const Shape& shape :
         {Shape{1, 1}, Shape{4, 10}, Shape{3, 256}, Shape{5, 1000}, Shape{300, 7}}) {
      SCOPED_TRACE(std::string(lp.name) + " " + shape.str());
      const RoundedInput x = input(shape, 10, lp.dtype, -5.0f, 5.0f);
      const RoundedInput dy = input(shape, 11, lp.dtype);
      Tensor y_gpu = empty_gpu(shape, lp.dtype);
      ops::softmax_forward(x.gpu, y_gpu);
      Tensor y_cpu = Tensor::empty(shape);
      ops::softmax_forward(x.cpu, y_cpu);
      const Tensor y = values_of(y_gpu);
      EXPECT_TENSORS_CLOSE(y, y_cpu, lp.tol);

      Tensor dx_gpu = empty_gpu(shape, lp.dtype);
      ops::softmax_backward(y_gpu, dy.gpu, dx_gpu);
      Tensor dx_cpu = Tensor::empty(shape);
      ops::softmax_backward(y, dy.cpu, dx_cpu);
      EXPECT_TENSORS_CLOSE(values_of(dx_gpu), dx_cpu, lp.tol);
    }
  }
}

TEST(CudaOpsLowPrecision, AMixOfDtypesIsAClearError) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{4, 5};
  Tensor f32 = Tensor::zeros(shape, DType::f32, Device::cuda(0));
  Tensor bf16 = Tensor::zeros(shape, DType::bf16, Device::cuda(0));
  Tensor f16 = Tensor::zeros(shape, DType::f16, Device::cuda(0));
  Tensor i32 = Tensor::zeros(shape, DType::i32, Device::cuda(0));
  Tensor mask = Tensor::zeros(shape, DType::u8, Device::cuda(0));
  const RngStream stream{};
  using testing::error_of;
  const auto relu = ops::Activation::relu;
  // Each message names the op, the argument and the dtype it must have.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {error_of([&] { ops::activation_forward(relu, 0, bf16, f16); }),
       "activation_forward: y must be bf16"},
      {error_of([&] { ops::activation_backward(relu, 0, f16, f32, f16); }),
       "activation_backward: dy must be f16"},
      {error_of([&] { ops::activation_backward(relu, 0, bf16, bf16, f32); }),
       "activation_backward: dx must be bf16"},
      {error_of([&] { ops::heaviside_forward(f32, bf16, 0.5f); }),
       "heaviside_forward: y must be f32"},
      {error_of([&] { ops::add(bf16, f32, bf16); }), "add: b must be bf16"},
      {error_of([&] { ops::add(f16, f16, bf16); }), "add: y must be f16"},
      {error_of([&] { ops::axpy(1.0f, f16, bf16); }), "axpy: y must be f16"},
      {error_of([&] { ops::scale(2.0f, i32); }), "scale: x must be f32, bf16 or f16"},
      {error_of([&] { ops::dropout_forward(bf16, f32, mask, 0.5f, stream); }),
       "dropout_forward: y must be bf16"},
      {error_of([&] { ops::dropout_forward(bf16, bf16, f16, 0.5f, stream); }),
       "dropout_forward: mask must be u8"},
      {error_of([&] { ops::dropout_backward(f16, mask, bf16, 0.5f); }),
       "dropout_backward: dx must be f16"},
      {error_of([&] { ops::softmax_forward(bf16, f32); }), "softmax_forward: y must be bf16"},
      {error_of([&] { ops::softmax_backward(bf16, f16, bf16); }),
       "softmax_backward: dy must be bf16"},
      // The CPU op's checks, which the GPU now makes too.
      {error_of([&] { ops::activation_forward(ops::Activation::leaky_relu, -0.1f, f16, f16); }),
       "activation_forward: leaky_relu needs a negative slope >= 0"},
      {error_of([&] { ops::dropout_forward(f16, f16, mask, 1.0f, stream); }),
       "dropout_forward: drop probability must be in [0, 1)"},
  };
  for (const auto& [what, expected] : cases) {
    EXPECT_NE(what.find(expected), std::string::npos) << "'" << expected << "' not in: " << what;
  }
}

}  // namespace
}  // namespace ruche
