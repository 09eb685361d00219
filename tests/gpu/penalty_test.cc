// The CUDA weight penalties against their CPU twins on random weights (norm-relative 1e-5), the
// backward's accumulation into dw, determinism, and the argument checks.
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

using Forward = void (*)(const Tensor&, float, Tensor&);
using Backward = void (*)(const Tensor&, float, Tensor&);

struct PenaltyCase {
  const char* name;
  Forward forward;
  Backward backward;
};

const PenaltyCase kPenalties[] = {
    {"l1", &ops::l1_penalty_forward, &ops::l1_penalty_backward},
    {"l2", &ops::l2_penalty_forward, &ops::l2_penalty_backward},
};

// Random weights with exact zeros every 5th element (L1's sign(0) = 0).
Tensor weights_with_zeros(const Shape& shape) {
  Tensor w = random_tensor(shape, 21);
  float* p = w.data<float>();
  for (std::int64_t i = 0; i < w.numel(); i += 5) p[i] = 0.0f;
  return w;
}

TEST(CudaPenalty, MatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  // One element, one block, more than the 1024 partial sums of the first pass (a flat buffer).
  for (const Shape& shape : {Shape{1}, Shape{1000}, Shape{64, 3, 3, 3}, Shape{(1 << 20) + 3}}) {
    for (const auto& c : kPenalties) {
      for (float coeff : {1e-4f, 0.5f}) {
        SCOPED_TRACE(std::string(c.name) + " " + shape.str() + " coeff " + std::to_string(coeff));
        const Tensor w = weights_with_zeros(shape);
        Tensor loss_cpu = Tensor::empty({1});
        c.forward(w, coeff, loss_cpu);
        Tensor loss_gpu = Tensor::empty({1}, DType::f32, Device::cuda(0));
        c.forward(on_gpu(w), coeff, loss_gpu);
        EXPECT_TENSORS_CLOSE(on_cpu(loss_gpu), loss_cpu, kTol);

        // Backward adds to what dw holds.
        const Tensor dw0 = random_tensor(shape, 22);
        Tensor dw_cpu = dw0.clone();
        c.backward(w, coeff, dw_cpu);
        Tensor dw_gpu = on_gpu(dw0);
        c.backward(on_gpu(w), coeff, dw_gpu);
        EXPECT_TENSORS_CLOSE(on_cpu(dw_gpu), dw_cpu, kTol);
      }
    }
  }
}

TEST(CudaPenalty, KnownValues) {
  RUCHE_REQUIRE_CUDA();
  // Independent of the CPU twin: w = [-2, 0, 3], coeff 0.5.
  const Tensor w = on_gpu(Tensor::from_vector({-2.0f, 0.0f, 3.0f}, {3}));
  Tensor loss = Tensor::empty({1}, DType::f32, Device::cuda(0));
  ops::l1_penalty_forward(w, 0.5f, loss);
  EXPECT_FLOAT_EQ(loss.item(), 2.5f);  // 0.5 * (2 + 0 + 3)
  ops::l2_penalty_forward(w, 0.5f, loss);
  EXPECT_FLOAT_EQ(loss.item(), 3.25f);  // 0.25 * (4 + 0 + 9)
  Tensor dw = on_gpu(Tensor::from_vector({1.0f, 1.0f, 1.0f}, {3}));
  ops::l1_penalty_backward(w, 0.5f, dw);
  EXPECT_EQ(dw.to_vector<float>(), (std::vector<float>{0.5f, 1.0f, 1.5f}));
  ops::l2_penalty_backward(w, 0.5f, dw);
  EXPECT_EQ(dw.to_vector<float>(), (std::vector<float>{-0.5f, 1.0f, 3.0f}));
}

TEST(CudaPenalty, IsDeterministic) {
  RUCHE_REQUIRE_CUDA();
  const Tensor w = on_gpu(random_tensor({(1 << 22) + 17}, 23));
  for (const auto& c : kPenalties) {
    Tensor a = Tensor::empty({1}, DType::f32, Device::cuda(0));
    Tensor b = Tensor::empty({1}, DType::f32, Device::cuda(0));
    c.forward(w, 0.1f, a);
    c.forward(w, 0.1f, b);
    EXPECT_EQ(a.item(), b.item()) << c.name;
  }
}

TEST(CudaPenalty, BadArgumentsAreClearErrors) {
  RUCHE_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  Tensor w = Tensor::zeros({4, 5}, DType::f32, gpu);
  Tensor loss2 = Tensor::zeros({2}, DType::f32, gpu);
  expect_error([&] { ops::l1_penalty_forward(w, 0.1f, loss2); },
               {"l1_penalty_forward", "one element"});
  Tensor dw = Tensor::zeros({5, 4}, DType::f32, gpu);
  expect_error([&] { ops::l2_penalty_backward(w, 0.1f, dw); },
               {"l2_penalty_backward", "dw has shape [5, 4]", "[4, 5]"});
  Tensor w_bf16 = Tensor::zeros({4, 5}, DType::bf16, gpu);
  Tensor loss = Tensor::zeros({1}, DType::f32, gpu);
  expect_error([&] { ops::l2_penalty_forward(w_bf16, 0.1f, loss); },
               {"l2_penalty_forward", "w", "f32"});
  Tensor host = Tensor::zeros({4, 5});
  expect_error([&] { ops::l1_penalty_backward(w, 0.1f, host); },
               {"l1_penalty_backward", "different devices"});
}

}  // namespace
}  // namespace ruche
