// A training step's tallies on CUDA (ops/cuda/step_tallies.cu) against the CPU ops: top-1 hits
// with ignored rows and ties, regression errors with and without the sigmoid, the gradient sums
// with a NaN, each queued without a host wait; and the step's read-back (engine/tensor/readback.h)
// brings several sources home with exactly one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "engine/tensor/readback.h"
#include "ops/cuda/runtime.h"
#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

using testing::on_cpu;
using testing::on_gpu;
using testing::random_tensor;

TEST(CudaStepTallies, Top1HitsMatchTheCpu) {
  RUCHE_REQUIRE_CUDA();
  for (const std::int64_t c : {2, 10, 1000}) {
    const std::int64_t n = 300;
    Tensor probs = random_tensor({n, c}, 51);
    probs.data<float>()[5 * c + 1] = probs.data<float>()[5 * c];  // a tie: the first index wins
    std::vector<std::int32_t> y(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = (i * 7) % c;
    y[3] = -1;  // ignored
    const Tensor labels = Tensor::from_vector(y, {n});
    for (const std::int64_t rows : {n, n - 17}) {
      Tensor cpu = Tensor::zeros({2});
      ops::top1_hits(probs, labels, rows, -1, cpu);
      Tensor gpu = Tensor::zeros({2}, DType::f32, Device::cuda(0));
      const std::uint64_t waits = cuda::host_waits();
      ops::top1_hits(on_gpu(probs), on_gpu(labels), rows, -1, gpu);
      EXPECT_EQ(cuda::host_waits(), waits);
      EXPECT_EQ(on_cpu(gpu).to_vector<float>(), cpu.to_vector<float>()) << c << " classes";
    }
  }
}

TEST(CudaStepTallies, RegressionErrorsMatchTheCpu) {
  RUCHE_REQUIRE_CUDA();
  const Tensor prediction = random_tensor({64, 3, 5, 5}, 52, -2.0f, 2.0f);
  const Tensor target = random_tensor({64, 3, 5, 5}, 53, 0.0f, 1.0f);
  for (const bool sigmoid : {false, true}) {
    Tensor cpu = Tensor::zeros({3});
    ops::regression_errors(prediction, target, 60, sigmoid, cpu);
    Tensor gpu = Tensor::zeros({3}, DType::f32, Device::cuda(0));
    ops::regression_errors(on_gpu(prediction), on_gpu(target), 60, sigmoid, gpu);
    const auto a = on_cpu(gpu).to_vector<float>(), b = cpu.to_vector<float>();
    for (std::size_t i = 0; i < 3; ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * (1 + std::fabs(b[i])));
  }
}

TEST(CudaStepTallies, OneReadbackBringsEverySourceWithOneWait) {
  RUCHE_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  Tensor grads = on_gpu(random_tensor({100000}, 54));
  Tensor sums = Tensor::zeros({2}, DType::i64, gpu);
  Tensor loss = on_gpu(Tensor::from_vector(std::vector<float>{2.5f}, {1}));
  Readback readback(gpu);
  const int sums_at = readback.add(sums), loss_at = readback.add(loss);
  for (const bool poisoned : {false, true}) {
    if (poisoned) {
      Tensor one = grads.narrow(0, 99, 1);
      one.copy_from(Tensor::from_vector(std::vector<float>{NAN}, {1}));
    }
    const std::uint64_t waits = cuda::host_waits();
    ops::sum_squares_finite(grads, grads.numel(), sums);
    readback.fetch();
    EXPECT_EQ(cuda::host_waits(), waits + 1);
    const ops::SumSquaresFinite got = ops::SumSquaresFinite::of(readback.host(sums_at));
    const ops::SumSquaresFinite want = ops::SumSquaresFinite::now(on_cpu(grads), grads.numel());
    EXPECT_EQ(got.finite, !poisoned);
    if (!poisoned) {
      EXPECT_NEAR(got.sum_squares, want.sum_squares, 1e-9 * want.sum_squares);
    }
    EXPECT_EQ(readback.host(loss_at).to_vector<float>(), std::vector<float>{2.5f});
  }
}

}  // namespace
}  // namespace ruche
