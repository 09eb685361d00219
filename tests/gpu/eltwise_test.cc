// The CUDA element-wise, softmax and MSE ops against their CPU twins on random inputs
// (norm-relative 1e-5), dropout masks bit for bit, and the argument checks.
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

using testing::expect_error;
using testing::on_cpu;
using testing::on_gpu;
using testing::random_tensor;

constexpr double kTol = 1e-5;

struct ActivationCase {
  ops::Activation kind;
  float alpha;
  const char* name;
};

const ActivationCase kActivations[] = {
    {ops::Activation::relu, 0.0f, "relu"},
    {ops::Activation::leaky_relu, 0.1f, "leaky_relu"},
    {ops::Activation::sigmoid, 0.0f, "sigmoid"},
    {ops::Activation::tanh, 0.0f, "tanh"},
};

TEST(CudaOps, ActivationForwardAndBackwardMatchCpu) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{7, 33, 5};
  for (const auto& c : kActivations) {
    SCOPED_TRACE(c.name);
    const Tensor x = random_tensor(shape, 1, -3.0f, 3.0f);
    const Tensor dy = random_tensor(shape, 2);
    Tensor y_cpu = Tensor::empty(shape);
    ops::activation_forward(c.kind, c.alpha, x, y_cpu);
    Tensor y_gpu = Tensor::empty(shape, DType::f32, Device::cuda(0));
    ops::activation_forward(c.kind, c.alpha, on_gpu(x), y_gpu);
    EXPECT_TENSORS_CLOSE(on_cpu(y_gpu), y_cpu, kTol);

    Tensor dx_cpu = Tensor::empty(shape);
    ops::activation_backward(c.kind, c.alpha, y_cpu, dy, dx_cpu);
    Tensor dx_gpu = Tensor::empty(shape, DType::f32, Device::cuda(0));
    ops::activation_backward(c.kind, c.alpha, on_gpu(y_cpu), on_gpu(dy), dx_gpu);
    EXPECT_TENSORS_CLOSE(on_cpu(dx_gpu), dx_cpu, kTol);
  }
}

TEST(CudaOps, ActivationRunsInPlace) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{1000};
  for (const auto& c : kActivations) {
    SCOPED_TRACE(c.name);
    const Tensor x = random_tensor(shape, 3, -2.0f, 2.0f);
    Tensor expected = Tensor::empty(shape);
    ops::activation_forward(c.kind, c.alpha, x, expected);
    Tensor t = on_gpu(x);
    ops::activation_forward(c.kind, c.alpha, t, t);
    EXPECT_TENSORS_CLOSE(on_cpu(t), expected, kTol);
    // Backward in place too: dx overwrites dy.
    const Tensor dy = random_tensor(shape, 4);
    Tensor dx_cpu = Tensor::empty(shape);
    ops::activation_backward(c.kind, c.alpha, expected, dy, dx_cpu);
    Tensor g = on_gpu(dy);
    ops::activation_backward(c.kind, c.alpha, t, g, g);
    EXPECT_TENSORS_CLOSE(on_cpu(g), dx_cpu, kTol);
  }
}

TEST(CudaOps, HeavisideMatchesCpuIncludingZeros) {
  RUCHE_REQUIRE_CUDA();
  Tensor x = random_tensor({513}, 5);
  float* px = x.data<float>();
  for (int i = 0; i < 513; i += 7) px[i] = 0.0f;
  for (float at_zero : {0.0f, 0.5f, 1.0f}) {
    Tensor y_cpu = Tensor::empty(x.shape());
    ops::heaviside_forward(x, y_cpu, at_zero);
    Tensor y_gpu = Tensor::empty(x.shape(), DType::f32, Device::cuda(0));
    ops::heaviside_forward(on_gpu(x), y_gpu, at_zero);
    EXPECT_EQ(on_cpu(y_gpu).to_vector<float>(), y_cpu.to_vector<float>()) << at_zero;
  }
}

TEST(CudaOps, ArithmeticMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{3, 4, 17, 19};
  const Tensor a = random_tensor(shape, 6);
  const Tensor b = random_tensor(shape, 7);

  Tensor y_cpu = Tensor::empty(shape);
  ops::add(a, b, y_cpu);
  Tensor y_gpu = Tensor::empty(shape, DType::f32, Device::cuda(0));
  ops::add(on_gpu(a), on_gpu(b), y_gpu);
  EXPECT_TENSORS_CLOSE(on_cpu(y_gpu), y_cpu, kTol);

  Tensor acc_cpu = b.clone();
  ops::axpy(-0.37f, a, acc_cpu);
  Tensor acc_gpu = on_gpu(b);
  ops::axpy(-0.37f, on_gpu(a), acc_gpu);
  EXPECT_TENSORS_CLOSE(on_cpu(acc_gpu), acc_cpu, kTol);

  Tensor s_cpu = a.clone();
  ops::scale(2.5f, s_cpu);
  Tensor s_gpu = on_gpu(a);
  ops::scale(2.5f, s_gpu);
  EXPECT_TENSORS_CLOSE(on_cpu(s_gpu), s_cpu, kTol);
}

TEST(CudaOps, DropoutMasksAreBitIdenticalToCpu) {
  RUCHE_REQUIRE_CUDA();
  // Counts that are and are not multiples of 4 (one Philox block feeds four elements), one large.
  for (std::int64_t n :
       {std::int64_t{1}, std::int64_t{1001}, std::int64_t{4096}, (std::int64_t{1} << 20) + 3}) {
    for (float p : {0.0f, 0.3f, 0.9f}) {
      SCOPED_TRACE("n " + std::to_string(n) + " p " + std::to_string(p));
      const RngStream stream{777, RngPurpose::dropout, 2, 31, 5};
      const Tensor x = random_tensor({n}, 8);
      Tensor y_cpu = Tensor::empty({n});
      Tensor mask_cpu = Tensor::empty({n}, DType::u8);
      ops::dropout_forward(x, y_cpu, mask_cpu, p, stream);
      Tensor y_gpu = Tensor::empty({n}, DType::f32, Device::cuda(0));
      Tensor mask_gpu = Tensor::empty({n}, DType::u8, Device::cuda(0));
      ops::dropout_forward(on_gpu(x), y_gpu, mask_gpu, p, stream);
      const auto m_gpu = mask_gpu.to_vector<std::uint8_t>();
      const auto m_cpu = mask_cpu.to_vector<std::uint8_t>();
      ASSERT_EQ(m_gpu, m_cpu);
      EXPECT_TENSORS_CLOSE(on_cpu(y_gpu), y_cpu, kTol);

      const Tensor dy = random_tensor({n}, 9);
      Tensor dx_cpu = Tensor::empty({n});
      ops::dropout_backward(dy, mask_cpu, dx_cpu, p);
      Tensor dx_gpu = Tensor::empty({n}, DType::f32, Device::cuda(0));
      ops::dropout_backward(on_gpu(dy), mask_gpu, dx_gpu, p);
      EXPECT_TENSORS_CLOSE(on_cpu(dx_gpu), dx_cpu, kTol);
    }
  }
}

TEST(CudaOps, DropoutMaskFollowsTheStream) {
  RUCHE_REQUIRE_CUDA();
  // Independent of the CPU twin: element i kept iff rng_uniform(stream, i) >= p.
  const std::int64_t n = 4099;
  const float p = 0.5f;
  const RngStream stream{12345, RngPurpose::dropout, 0, 7, 1};
  Tensor x = Tensor::empty({n}, DType::f32, Device::cuda(0));
  x.fill(1.0f);
  Tensor y = Tensor::empty({n}, DType::f32, Device::cuda(0));
  Tensor mask = Tensor::empty({n}, DType::u8, Device::cuda(0));
  ops::dropout_forward(x, y, mask, p, stream);
  const auto m = mask.to_vector<std::uint8_t>();
  const auto v = y.to_vector<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    const bool keep = rng_uniform(stream, static_cast<std::uint64_t>(i)) >= p;
    ASSERT_EQ(m[static_cast<std::size_t>(i)], keep ? 1 : 0) << "element " << i;
    ASSERT_EQ(v[static_cast<std::size_t>(i)], keep ? 2.0f : 0.0f) << "element " << i;
  }
}

TEST(CudaOps, SoftmaxMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  // C below, at and far above one block's 256 threads.
  for (const Shape& shape :
       {Shape{1, 1}, Shape{4, 10}, Shape{3, 256}, Shape{5, 1000}, Shape{2, 5000}, Shape{300, 7}}) {
    SCOPED_TRACE(shape.str());
    const Tensor x = random_tensor(shape, 10, -5.0f, 5.0f);
    const Tensor dy = random_tensor(shape, 11);
    Tensor y_cpu = Tensor::empty(shape);
    ops::softmax_forward(x, y_cpu);
    Tensor y_gpu = Tensor::empty(shape, DType::f32, Device::cuda(0));
    ops::softmax_forward(on_gpu(x), y_gpu);
    EXPECT_TENSORS_CLOSE(on_cpu(y_gpu), y_cpu, kTol);

    Tensor dx_cpu = Tensor::empty(shape);
    ops::softmax_backward(y_cpu, dy, dx_cpu);
    Tensor dx_gpu = Tensor::empty(shape, DType::f32, Device::cuda(0));
    ops::softmax_backward(on_gpu(y_cpu), on_gpu(dy), dx_gpu);
    EXPECT_TENSORS_CLOSE(on_cpu(dx_gpu), dx_cpu, kTol);
  }
}

TEST(CudaOps, SoftmaxIsStableForLargeLogits) {
  RUCHE_REQUIRE_CUDA();
  const Tensor x = Tensor::from_vector({1000.0f, 1001.0f, 1002.0f, -1000.0f}, {1, 4});
  Tensor y = Tensor::empty({1, 4}, DType::f32, Device::cuda(0));
  ops::softmax_forward(on_gpu(x), y);
  const auto v = y.to_vector<float>();
  EXPECT_NEAR(v[0], 0.09003057f, 1e-6);
  EXPECT_NEAR(v[1], 0.24472847f, 1e-6);
  EXPECT_NEAR(v[2], 0.66524096f, 1e-6);
  EXPECT_EQ(v[3], 0.0f);
}

TEST(CudaOps, MseMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  // One element, one block, and more than the 1024 partial sums of the first pass.
  for (const Shape& shape : {Shape{1}, Shape{10, 100}, Shape{64, 3, 64, 64}}) {
    SCOPED_TRACE(shape.str());
    const Tensor pred = random_tensor(shape, 12);
    const Tensor target = random_tensor(shape, 13);
    Tensor loss_cpu = Tensor::empty({1});
    ops::mse_forward(pred, target, loss_cpu);
    Tensor loss_gpu = Tensor::empty({1}, DType::f32, Device::cuda(0));
    ops::mse_forward(on_gpu(pred), on_gpu(target), loss_gpu);
    EXPECT_TENSORS_CLOSE(on_cpu(loss_gpu), loss_cpu, kTol);

    Tensor d_cpu = Tensor::empty(shape);
    ops::mse_backward(pred, target, d_cpu, 0.75f);
    Tensor d_gpu = Tensor::empty(shape, DType::f32, Device::cuda(0));
    ops::mse_backward(on_gpu(pred), on_gpu(target), d_gpu, 0.75f);
    EXPECT_TENSORS_CLOSE(on_cpu(d_gpu), d_cpu, kTol);
  }
}

TEST(CudaOps, PointwiseLossesMatchCpu) {
  RUCHE_REQUIRE_CUDA();
  for (const auto kind :
       {ops::PointwiseLoss::l1, ops::PointwiseLoss::smooth_l1, ops::PointwiseLoss::bce_logits}) {
    for (const Shape& shape : {Shape{1}, Shape{64, 3, 64, 64}}) {
      SCOPED_TRACE(shape.str());
      const ops::PointwiseLossParams p{kind, 1.0f};
      const Tensor pred = random_tensor(shape, 14);
      const Tensor target = random_tensor(shape, 15);
      Tensor loss_cpu = Tensor::empty({1});
      ops::pointwise_loss_forward(p, pred, target, loss_cpu);
      Tensor loss_gpu = Tensor::empty({1}, DType::f32, Device::cuda(0));
      ops::pointwise_loss_forward(p, on_gpu(pred), on_gpu(target), loss_gpu);
      EXPECT_TENSORS_CLOSE(on_cpu(loss_gpu), loss_cpu, kTol);
      Tensor d_cpu = Tensor::empty(shape);
      ops::pointwise_loss_backward(p, pred, target, d_cpu, 0.75f);
      Tensor d_gpu = Tensor::empty(shape, DType::f32, Device::cuda(0));
      ops::pointwise_loss_backward(p, on_gpu(pred), on_gpu(target), d_gpu, 0.75f);
      EXPECT_TENSORS_CLOSE(on_cpu(d_gpu), d_cpu, kTol);
    }
  }
}

TEST(CudaOps, MseIsDeterministic) {
  RUCHE_REQUIRE_CUDA();
  const Tensor pred = on_gpu(random_tensor({1 << 20}, 14));
  const Tensor target = on_gpu(random_tensor({1 << 20}, 15));
  Tensor a = Tensor::empty({1}, DType::f32, Device::cuda(0));
  Tensor b = Tensor::empty({1}, DType::f32, Device::cuda(0));
  ops::mse_forward(pred, target, a);
  ops::mse_forward(pred, target, b);
  EXPECT_EQ(a.item(), b.item());
}

TEST(CudaOps, BadArgumentsAreClearErrors) {
  RUCHE_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  Tensor x = Tensor::zeros({4, 5}, DType::f32, gpu);
  Tensor y = Tensor::zeros({4, 6}, DType::f32, gpu);
  expect_error([&] { ops::activation_forward(ops::Activation::relu, 0, x, y); },
               {"activation_forward", "[4, 6]", "[4, 5]"});
  expect_error([&] { ops::add(x, y, x); }, {"add", "shape"});
  Tensor host = Tensor::zeros({4, 5});
  expect_error([&] { ops::axpy(1.0f, x, host); }, {"axpy", "different devices"});
  Tensor mask_f32 = Tensor::zeros({4, 5}, DType::f32, gpu);
  expect_error([&] { ops::dropout_forward(x, x, mask_f32, 0.5f, RngStream{}); },
               {"dropout_forward", "mask", "u8"});
  Tensor mask = Tensor::zeros({4, 5}, DType::u8, gpu);
  expect_error([&] { ops::dropout_forward(x, x, mask, 1.5f, RngStream{}); },
               {"dropout_forward", "1.5"});
  Tensor x3 = Tensor::zeros({2, 3, 4}, DType::f32, gpu);
  expect_error([&] { ops::softmax_forward(x3, x3); }, {"softmax_forward", "[N, C]"});
  Tensor loss = Tensor::zeros({2}, DType::f32, gpu);
  expect_error([&] { ops::mse_forward(x, x, loss); }, {"mse_forward", "one element"});
  Tensor empty = Tensor::zeros({0, 5}, DType::f32, gpu);
  Tensor one = Tensor::zeros({1}, DType::f32, gpu);
  expect_error([&] { ops::mse_forward(empty, empty, one); }, {"mse_forward", "empty"});
  Tensor strided = x.transpose(0, 1);
  expect_error([&] { ops::scale(2.0f, strided); }, {"scale", "contiguous"});
}

TEST(CudaOps, CudaTensorWithoutDeviceIsAClearError) {
  if (testing::why_no_cuda().empty()) GTEST_SKIP() << "a CUDA device is present";
  // The one test that runs without a device: asking for one is a ruche::Error, not a crash.
  expect_error([] { Tensor::empty({4}, DType::f32, Device::cuda(0)); }, {"cuda:0"});
}

}  // namespace
}  // namespace ruche
