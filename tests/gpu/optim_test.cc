// The optimizer's CUDA ops against their CPU twins: every optimizer through Optimizer (ranges with
// lr_mult / decay_mult, a LARS-exempt bias, ranges spanning several chunks, l1), several steps,
// params and slots norm-relative 1e-6; the sum of squares and the non-finite flag; casts bit for
// bit; argument checks.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "engine/optim/grad_norm.h"
#include "engine/optim/optimizer.h"
#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

using testing::on_cpu;
using testing::on_gpu;
using testing::random_tensor;

// Each step's element formula is the same code on both devices; what differs is nvcc's fused
// multiply-adds (one rounding less per a * b + c) and, for LARS, the order of the double sums
// behind the trust ratios: a few float ulps after several steps, far below 1e-6.
constexpr double kTol = 1e-6;

struct OptimCase {
  const char* name;
  OptimizerKind kind;
  float momentum;
  bool nesterov;
};

const OptimCase kCases[] = {
    {"sgd", OptimizerKind::sgd, 0.0f, false},
    {"sgd_momentum", OptimizerKind::sgd, 0.9f, false},
    {"sgd_nesterov", OptimizerKind::sgd, 0.9f, true},
    {"adam", OptimizerKind::adam, 0.0f, false},
    {"adamw", OptimizerKind::adamw, 0.0f, false},
    {"rmsprop", OptimizerKind::rmsprop, 0.0f, false},
    {"rmsprop_momentum", OptimizerKind::rmsprop, 0.5f, false},
    {"lars", OptimizerKind::lars, 0.9f, false},
};

ParamRange range(std::int64_t begin, std::int64_t end, float lr_mult, float decay_mult,
                 bool adapt) {
  ParamRange r;
  r.begin = begin;
  r.end = end;
  r.lr_mult = lr_mult;
  r.decay_mult = decay_mult;
  r.adapt = adapt;
  return r;
}

// A weight spanning several 8192-element chunks, a bias (no decay, not adapted), a gap (a frozen
// tensor's place is not in the gradient buffer, but a gap between ranges must be left alone), an
// empty range, and a small weight with its own multipliers.
std::vector<ParamRange> test_ranges() {
  return {range(0, 20000, 1.0f, 1.0f, true), range(20000, 20037, 2.0f, 0.0f, false),
          range(20100, 20100, 1.0f, 1.0f, true), range(20100, 23000, 0.5f, 3.0f, true)};
}
constexpr std::int64_t kTrainable = 23000;

OptimizerHyper hyper_of(const OptimCase& c) {
  OptimizerHyper h;
  h.momentum = c.momentum;
  h.nesterov = c.nesterov;
  h.weight_decay = 0.01f;
  h.l1_decay = 1e-4f;
  h.trust = 0.02f;
  return h;
}

TEST(CudaOptim, EveryOptimizerMatchesCpuOverSteps) {
  RUCHE_REQUIRE_CUDA();
  for (const OptimCase& c : kCases) {
    SCOPED_TRACE(c.name);
    Optimizer cpu(c.kind, hyper_of(c), test_ranges(), kTrainable);
    Optimizer gpu(c.kind, hyper_of(c), test_ranges(), kTrainable, Device::cuda(0));
    EXPECT_EQ(gpu.device(), Device::cuda(0));
    Tensor params_cpu = random_tensor({kTrainable}, 1);
    Tensor params_gpu = on_gpu(params_cpu);
    for (int step = 0; step < 5; ++step) {
      const Tensor grads = random_tensor({kTrainable}, 10 + step, -0.5f, 0.5f);
      const float lr = 0.05f / static_cast<float>(step + 1);
      cpu.step(params_cpu, grads, lr);
      gpu.step(params_gpu, on_gpu(grads), lr);
    }
    EXPECT_TENSORS_CLOSE(on_cpu(params_gpu), params_cpu, kTol);
    // The gap between ranges [20037, 20100) is untouched on both.
    EXPECT_EQ(on_cpu(params_gpu).narrow(0, 20037, 63).to_vector<float>(),
              params_cpu.narrow(0, 20037, 63).to_vector<float>());
    ASSERT_EQ(gpu.slots().size(), cpu.slots().size());
    for (std::size_t s = 0; s < cpu.slots().size(); ++s) {
      SCOPED_TRACE(cpu.slots()[s].first);
      EXPECT_EQ(gpu.slots()[s].second->device(), Device::cuda(0));
      EXPECT_TENSORS_CLOSE(on_cpu(*gpu.slots()[s].second), *cpu.slots()[s].second, kTol);
    }
  }
}

// The LARS ratios are reduced in a fixed order on the device: the same state gives the same bits.
TEST(CudaOptim, LarsIsDeterministic) {
  RUCHE_REQUIRE_CUDA();
  const OptimCase& c = kCases[7];
  ASSERT_EQ(c.kind, OptimizerKind::lars);
  const Tensor start = on_gpu(random_tensor({kTrainable}, 2));
  const Tensor grads = on_gpu(random_tensor({kTrainable}, 3));
  std::vector<std::vector<float>> results;
  for (int run = 0; run < 2; ++run) {
    Optimizer gpu(c.kind, hyper_of(c), test_ranges(), kTrainable, Device::cuda(0));
    Tensor params = start.clone();
    for (int step = 0; step < 3; ++step) gpu.step(params, grads, 0.1f);
    results.push_back(params.to_vector<float>());
  }
  EXPECT_TRUE(results[0] == results[1]);
}

// A range whose gradient is zero keeps ratio 1 (and so moves only by its decay), as on the CPU.
TEST(CudaOptim, LarsZeroGradientRange) {
  RUCHE_REQUIRE_CUDA();
  const OptimCase& c = kCases[7];
  Optimizer cpu(c.kind, hyper_of(c), test_ranges(), kTrainable);
  Optimizer gpu(c.kind, hyper_of(c), test_ranges(), kTrainable, Device::cuda(0));
  Tensor params_cpu = random_tensor({kTrainable}, 4);
  Tensor params_gpu = on_gpu(params_cpu);
  Tensor grads = random_tensor({kTrainable}, 5);
  grads.narrow(0, 20100, 2900).zero();
  cpu.step(params_cpu, grads, 0.1f);
  gpu.step(params_gpu, on_gpu(grads), 0.1f);
  EXPECT_TENSORS_CLOSE(on_cpu(params_gpu), params_cpu, kTol);
}

TEST(CudaOptim, GradStatsMatchCpu) {
  RUCHE_REQUIRE_CUDA();
  const std::int64_t n = (1 << 20) + 7;
  const Tensor g = random_tensor({n}, 6, -2.0f, 2.0f);
  const Tensor g_gpu = on_gpu(g);
  const GradStats cpu = grad_stats(g, n);
  const GradStats gpu = grad_stats(g_gpu, n);
  EXPECT_TRUE(gpu.finite);
  // Both sum in double, in different orders.
  EXPECT_NEAR(gpu.sum_squares, cpu.sum_squares, 1e-12 * cpu.sum_squares);
  EXPECT_EQ(grad_stats(g_gpu, n).sum_squares, gpu.sum_squares);  // a fixed tree
  const GradStats prefix = grad_stats(g_gpu, 1000);
  EXPECT_NEAR(prefix.sum_squares, grad_stats(g, 1000).sum_squares, 1e-12 * prefix.sum_squares);
  EXPECT_EQ(grad_stats(g_gpu, 0).sum_squares, 0.0);
  // Clipping on the device scales the prefix only.
  Tensor clipped_cpu = g.clone(), clipped_gpu = g_gpu.clone();
  const float f_cpu = clip_grad_norm(clipped_cpu, n - 7, grad_stats(g, n - 7), 1.0f);
  const float f_gpu = clip_grad_norm(clipped_gpu, n - 7, grad_stats(g_gpu, n - 7), 1.0f);
  EXPECT_NEAR(f_gpu, f_cpu, 1e-6 * f_cpu);
  EXPECT_TENSORS_CLOSE(on_cpu(clipped_gpu), clipped_cpu, 1e-6);
  EXPECT_EQ(on_cpu(clipped_gpu).narrow(0, n - 7, 7).to_vector<float>(),
            g.narrow(0, n - 7, 7).to_vector<float>());
}

TEST(CudaOptim, NonFiniteDetectedAsOnCpu) {
  RUCHE_REQUIRE_CUDA();
  const std::int64_t n = (1 << 18) + 3;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    Tensor g = random_tensor({n}, 7);
    g.data<float>()[n - 1] = bad;  // the very last element
    const Tensor g_gpu = on_gpu(g);
    EXPECT_FALSE(grad_stats(g, n).finite);
    EXPECT_FALSE(grad_stats(g_gpu, n).finite);
    EXPECT_TRUE(grad_stats(g_gpu, n - 1).finite);
    EXPECT_EQ(std::isnan(grad_stats(g_gpu, n).sum_squares), std::isnan(bad));
  }
}

std::vector<std::uint16_t> bits_of(const Tensor& t) {
  const Tensor host = on_cpu(t);
  const auto* p = static_cast<const std::uint16_t*>(host.raw_data());
  return std::vector<std::uint16_t>(p, p + host.numel());
}

Tensor bits_tensor(const std::vector<std::uint16_t>& bits, DType dtype) {
  Tensor t = Tensor::empty({static_cast<std::int64_t>(bits.size())}, dtype);
  std::copy(bits.begin(), bits.end(), static_cast<std::uint16_t*>(t.raw_data()));
  return t;
}

// Same bits as the CPU cast where the CPU gives a number; NaN where it gives NaN (the CPU's NaN
// payload depends on whether it used F16C).
void expect_same_16(const std::vector<std::uint16_t>& gpu, const std::vector<std::uint16_t>& cpu,
                    DType type) {
  ASSERT_EQ(gpu.size(), cpu.size());
  const std::uint16_t exponent = type == DType::f16 ? 0x7C00 : 0x7F80;
  const std::uint16_t mantissa = type == DType::f16 ? 0x03FF : 0x007F;
  std::int64_t mismatches = 0;
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    const bool cpu_nan = (cpu[i] & exponent) == exponent && (cpu[i] & mantissa) != 0;
    const bool gpu_nan = (gpu[i] & exponent) == exponent && (gpu[i] & mantissa) != 0;
    mismatches += cpu_nan ? !gpu_nan : gpu[i] != cpu[i];
  }
  EXPECT_EQ(mismatches, 0) << dtype_name(type);
}

// The same for f32 results on the cpu: same bits where the CPU gives a number, NaN where it gives
// NaN.
void expect_same_f32(const Tensor& gpu, const Tensor& cpu) {
  const auto a = gpu.to_vector<float>(), b = cpu.to_vector<float>();
  ASSERT_EQ(a.size(), b.size());
  std::int64_t mismatches = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    mismatches += std::isnan(b[i])
                      ? !std::isnan(a[i])
                      : std::bit_cast<std::uint32_t>(a[i]) != std::bit_cast<std::uint32_t>(b[i]);
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(CudaOptim, CastMatchesCpuBitForBit) {
  RUCHE_REQUIRE_CUDA();
  std::vector<float> values = random_tensor({100003}, 8, -70000.0f, 70000.0f).to_vector<float>();
  const std::vector<float> small = random_tensor({5000}, 9, -1e-4f, 1e-4f).to_vector<float>();
  values.insert(values.end(), small.begin(), small.end());
  for (float v : {0.0f, -0.0f, 65520.0f, 0x1p-25f, 0x1.8p-25f, 1.0f + 0x1p-8f, 0x1p-149f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::max()}) {
    values.push_back(v);
  }
  const Tensor x = Tensor::from_vector(values, {static_cast<std::int64_t>(values.size())});
  const Tensor x_gpu = on_gpu(x);
  for (DType to : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(std::string(dtype_name(to)));
    Tensor y_cpu = Tensor::empty(x.shape(), to);
    ops::cast(x, y_cpu);
    Tensor y_gpu = Tensor::empty(x.shape(), to, Device::cuda(0));
    ops::cast(x_gpu, y_gpu);
    expect_same_16(bits_of(y_gpu), bits_of(y_cpu), to);
    // And back to f32, and across to the other 16-bit type.
    Tensor back_cpu = Tensor::empty(x.shape()), back_gpu = on_gpu(back_cpu);
    ops::cast(y_cpu, back_cpu);
    ops::cast(y_gpu, back_gpu);
    expect_same_f32(on_cpu(back_gpu), back_cpu);
    const DType other = to == DType::f16 ? DType::bf16 : DType::f16;
    Tensor across_cpu = Tensor::empty(x.shape(), other);
    Tensor across_gpu = Tensor::empty(x.shape(), other, Device::cuda(0));
    ops::cast(y_cpu, across_cpu);
    ops::cast(y_gpu, across_gpu);
    expect_same_16(bits_of(across_gpu), bits_of(across_cpu), other);
  }
}

// Every 16-bit pattern widens to the CPU's f32 and narrows back to itself.
TEST(CudaOptim, CastEveryPatternRoundTrips) {
  RUCHE_REQUIRE_CUDA();
  std::vector<std::uint16_t> all(1 << 16);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint16_t>(i);
  for (DType type : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(std::string(dtype_name(type)));
    const Tensor h = bits_tensor(all, type);
    Tensor f_cpu = Tensor::empty(h.shape());
    ops::cast(h, f_cpu);
    Tensor f_gpu = Tensor::empty(h.shape(), DType::f32, Device::cuda(0));
    ops::cast(on_gpu(h), f_gpu);
    expect_same_f32(on_cpu(f_gpu), f_cpu);
    Tensor back = Tensor::empty(h.shape(), type, Device::cuda(0));
    ops::cast(f_gpu, back);
    expect_same_16(bits_of(back), all, type);
  }
}

TEST(CudaOptim, ClearErrors) {
  RUCHE_REQUIRE_CUDA();
  const auto cuda = Device::cuda(0);
  Optimizer opt(OptimizerKind::sgd, OptimizerHyper{}, test_ranges(), kTrainable, cuda);
  Tensor params_cpu = Tensor::zeros({kTrainable});
  const Tensor grads_gpu = Tensor::zeros({kTrainable}, DType::f32, cuda);
  EXPECT_NE(testing::error_of([&] {
              opt.step(params_cpu, grads_gpu, 0.1f);
            }).find("params on cpu but the optimizer state on cuda:0"),
            std::string::npos);
  // The op itself: a slot the kind needs is missing; the buffers are too short.
  ops::OptimizerStep step;
  step.kind = OptimizerKind::adam;
  const std::vector<ops::UpdateRange> ranges = {{0, 100, true}};
  const std::vector<ops::RangeStep> steps(1);
  step.ranges = ranges;
  step.steps = steps;
  Tensor params = Tensor::zeros({100}, DType::f32, cuda), slot = params.clone(), none;
  EXPECT_EQ(testing::error_of([&] { ops::optimizer_update(step, params, params, slot, none); }),
            "optimizer_update: slot1 is not given");
  Tensor short_grads = Tensor::zeros({99}, DType::f32, cuda);
  EXPECT_EQ(
      testing::error_of([&] { ops::optimizer_update(step, params, short_grads, slot, slot); }),
      "optimizer_update: grads holds 99 elements but the ranges reach 100");
  Tensor out = Tensor::zeros({2}, DType::i64, cuda);
  EXPECT_NE(testing::error_of([&] {
              ops::sum_squares_finite(params, 101, out);
            }).find("sum_squares_finite: count 101 outside [0, 100]"),
            std::string::npos);
  Tensor ints = Tensor::zeros({100}, DType::i32, cuda);
  EXPECT_NE(
      testing::error_of([&] { ops::cast(params, ints); }).find("cast: y must be f32, bf16 or f16"),
      std::string::npos);
}

}  // namespace
}  // namespace ruche
