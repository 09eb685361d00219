// The CUDA batch norm (cuDNN's training forward, inference and backward; our kernels for the
// synchronized batch norm's pieces) against the CPU twins on random inputs, 4-D and 2-D, odd sizes;
// running statistics after two training calls; the sync pieces composed equal the plain ops; bf16
// and f16 data with f32 statistics; the argument checks.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
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

using testing::error_of;
using testing::on_cpu;
using testing::on_gpu;
using testing::random_tensor;

constexpr double kTol = 1e-5;       // fp32, our kernels or element-wise cuDNN
constexpr double kCudnnTol = 1e-4;  // fp32 gradients: cuDNN's reductions differ from oneDNN's
const Device kGpu = Device::cuda(0);

const Shape kShapes[] = {{3, 5, 7, 9}, {3, 5}, {16, 5}, {2, 3, 1, 1}};

// Running statistics, batch statistics on one device; running ones start away from 0 / 1.
struct Moments {
  Tensor running_mean, running_var, save_mean, save_var;
  Moments(std::int64_t c, Device device) {
    Tensor rm = Tensor::empty({c}), rv = Tensor::empty({c});
    rm.fill(0.25f);
    rv.fill(1.5f);
    running_mean = rm.to(device);
    running_var = rv.to(device);
    save_mean = Tensor::empty({c}, DType::f32, device);
    save_var = Tensor::empty({c}, DType::f32, device);
  }
};

void expect_moments_close(const Moments& gpu, const Moments& cpu, double tol) {
  EXPECT_TENSORS_CLOSE(on_cpu(gpu.save_mean), cpu.save_mean, tol);
  EXPECT_TENSORS_CLOSE(on_cpu(gpu.save_var), cpu.save_var, tol);
  EXPECT_TENSORS_CLOSE(on_cpu(gpu.running_mean), cpu.running_mean, tol);
  EXPECT_TENSORS_CLOSE(on_cpu(gpu.running_var), cpu.running_var, tol);
}

Tensor gpu_or_undefined(const Tensor& t) { return t.defined() ? on_gpu(t) : Tensor(); }
Tensor empty_like_on(const Tensor& t, Device device) {
  return Tensor::empty(t.shape(), t.dtype(), device);
}

TEST(CudaBatchNorm, TrainingForwardAndRunningStatisticsMatchCpu) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 100;
  for (const Shape& shape : kShapes) {
    for (const bool affine : {true, false}) {
      SCOPED_TRACE(shape.str() + (affine ? " affine" : " plain"));
      const std::int64_t c = shape[1];
      ops::BatchNormParams p;
      p.momentum = 0.3f;  // so the second call's running statistics differ visibly
      const Tensor gamma = affine ? random_tensor({c}, seed + 1, 0.5f, 1.5f) : Tensor();
      const Tensor beta = affine ? random_tensor({c}, seed + 2) : Tensor();
      Moments cpu(c, Device::cpu()), gpu(c, kGpu);
      // Two calls with different batches: the running statistics accumulate both.
      for (int call = 0; call < 2; ++call) {
        SCOPED_TRACE("call " + std::to_string(call));
        const Tensor x = random_tensor(shape, seed + 3 + call, -1.0f, 3.0f);  // mean away from 0
        Tensor y_cpu = Tensor::empty(shape);
        ops::batch_norm_forward_training(x, gamma, beta, y_cpu, cpu.running_mean, cpu.running_var,
                                         cpu.save_mean, cpu.save_var, p);
        Tensor y_gpu = Tensor::empty(shape, DType::f32, kGpu);
        ops::batch_norm_forward_training(on_gpu(x), gpu_or_undefined(gamma), gpu_or_undefined(beta),
                                         y_gpu, gpu.running_mean, gpu.running_var, gpu.save_mean,
                                         gpu.save_var, p);
        EXPECT_TENSORS_CLOSE(on_cpu(y_gpu), y_cpu, kTol);
        expect_moments_close(gpu, cpu, kTol);
      }
      seed += 10;
    }
  }
}

TEST(CudaBatchNorm, RunningVarianceIsUnbiased) {
  RUCHE_REQUIRE_CUDA();
  // Channel values {0, 2} (N = 2, one value each): biased variance 1, unbiased 2. momentum 1
  // makes the running statistics the batch's.
  const Tensor x = Tensor::from_vector({0.0f, 2.0f}, {2, 1});
  Moments gpu(1, kGpu);
  Tensor y = Tensor::empty({2, 1}, DType::f32, kGpu);
  ops::BatchNormParams p;
  p.momentum = 1.0f;
  ops::batch_norm_forward_training(on_gpu(x), Tensor(), Tensor(), y, gpu.running_mean,
                                   gpu.running_var, gpu.save_mean, gpu.save_var, p);
  EXPECT_NEAR(on_cpu(gpu.save_mean).item(), 1.0f, 1e-6f);
  EXPECT_NEAR(on_cpu(gpu.save_var).item(), 1.0f, 1e-5f);
  EXPECT_NEAR(on_cpu(gpu.running_mean).item(), 1.0f, 1e-6f);
  EXPECT_NEAR(on_cpu(gpu.running_var).item(), 2.0f, 2e-5f);
  const std::vector<float> want{-1.0f / std::sqrt(1.0f + p.eps), 1.0f / std::sqrt(1.0f + p.eps)};
  const std::vector<float> got = on_cpu(y).to_vector<float>();
  EXPECT_NEAR(got[0], want[0], 1e-5f);
  EXPECT_NEAR(got[1], want[1], 1e-5f);
}

TEST(CudaBatchNorm, InferenceMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 200;
  for (const Shape& shape : kShapes) {
    for (const bool affine : {true, false}) {
      SCOPED_TRACE(shape.str() + (affine ? " affine" : " plain"));
      const std::int64_t c = shape[1];
      ops::BatchNormParams p;
      const Tensor x = random_tensor(shape, seed, -2.0f, 2.0f);
      const Tensor gamma = affine ? random_tensor({c}, seed + 1, 0.5f, 1.5f) : Tensor();
      const Tensor beta = affine ? random_tensor({c}, seed + 2) : Tensor();
      const Tensor mean = random_tensor({c}, seed + 3);
      const Tensor var = random_tensor({c}, seed + 4, 0.2f, 2.0f);
      Tensor y_cpu = Tensor::empty(shape);
      ops::batch_norm_forward_inference(x, gamma, beta, mean, var, y_cpu, p);
      Tensor y_gpu = Tensor::empty(shape, DType::f32, kGpu);
      ops::batch_norm_forward_inference(on_gpu(x), gpu_or_undefined(gamma), gpu_or_undefined(beta),
                                        on_gpu(mean), on_gpu(var), y_gpu, p);
      EXPECT_TENSORS_CLOSE(on_cpu(y_gpu), y_cpu, kTol);
      seed += 10;
    }
  }
}

// What backward is asked for: gamma (hence dgamma) and dbeta each given or not.
struct BackwardCase {
  bool gamma, dbeta;
  const char* name;
};
const BackwardCase kBackwardCases[] = {{true, true, "gamma, dbeta"},
                                       {false, true, "no gamma, dbeta"},
                                       {true, false, "gamma only"},
                                       {false, false, "neither"}};

TEST(CudaBatchNorm, BackwardMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 300;
  for (const Shape& shape : kShapes) {
    for (const BackwardCase& bc : kBackwardCases) {
      SCOPED_TRACE(shape.str() + " " + bc.name);
      const std::int64_t c = shape[1];
      ops::BatchNormParams p;
      const Tensor x = random_tensor(shape, seed, -1.0f, 3.0f);
      const Tensor dy = random_tensor(shape, seed + 1);
      const Tensor gamma = bc.gamma ? random_tensor({c}, seed + 2, 0.5f, 1.5f) : Tensor();
      // The saved statistics from the CPU forward, used by both backwards.
      Moments cpu(c, Device::cpu());
      Tensor y = Tensor::empty(shape);
      ops::batch_norm_forward_training(x, gamma, Tensor(), y, cpu.running_mean, cpu.running_var,
                                       cpu.save_mean, cpu.save_var, p);

      Tensor dx_cpu = Tensor::empty(shape);
      Tensor dgamma_cpu = bc.gamma ? Tensor::empty({c}) : Tensor();
      Tensor dbeta_cpu = bc.dbeta ? Tensor::empty({c}) : Tensor();
      ops::batch_norm_backward(dy, x, gamma, cpu.save_mean, cpu.save_var, dx_cpu, dgamma_cpu,
                               dbeta_cpu, p);
      Tensor dx_gpu = Tensor::empty(shape, DType::f32, kGpu);
      Tensor dgamma_gpu = bc.gamma ? Tensor::empty({c}, DType::f32, kGpu) : Tensor();
      Tensor dbeta_gpu = bc.dbeta ? Tensor::empty({c}, DType::f32, kGpu) : Tensor();
      ops::batch_norm_backward(on_gpu(dy), on_gpu(x), gpu_or_undefined(gamma),
                               on_gpu(cpu.save_mean), on_gpu(cpu.save_var), dx_gpu, dgamma_gpu,
                               dbeta_gpu, p);
      EXPECT_TENSORS_CLOSE(on_cpu(dx_gpu), dx_cpu, kCudnnTol);
      if (bc.gamma) {
        EXPECT_TENSORS_CLOSE(on_cpu(dgamma_gpu), dgamma_cpu, kCudnnTol);
      }
      if (bc.dbeta) {
        EXPECT_TENSORS_CLOSE(on_cpu(dbeta_gpu), dbeta_cpu, kCudnnTol);
      }
      seed += 10;
    }
  }
}

// ---- synchronized batch norm ----

// The four pieces on GPU against the CPU pieces, and composed (one rank, no all-reduce) against the
// plain GPU ops.
void check_sync_pieces(const Shape& shape, bool affine, std::uint32_t seed) {
  SCOPED_TRACE("sync pieces " + shape.str() + (affine ? " affine" : " plain"));
  const std::int64_t c = shape[1];
  ops::BatchNormParams p;
  const Tensor x = random_tensor(shape, seed, -1.0f, 3.0f);
  const Tensor dy = random_tensor(shape, seed + 1);
  const Tensor gamma = affine ? random_tensor({c}, seed + 2, 0.5f, 1.5f) : Tensor();
  const Tensor beta = affine ? random_tensor({c}, seed + 3) : Tensor();
  const Tensor x_gpu = on_gpu(x), dy_gpu = on_gpu(dy);
  const Tensor gamma_gpu = gpu_or_undefined(gamma), beta_gpu = gpu_or_undefined(beta);

  // Forward pieces.
  Tensor stats_cpu = Tensor::empty({2 * c + 1});
  Tensor stats_gpu = Tensor::empty({2 * c + 1}, DType::f32, kGpu);
  ops::batch_norm_local_stats(x, stats_cpu);
  ops::batch_norm_local_stats(x_gpu, stats_gpu);
  EXPECT_TENSORS_CLOSE(on_cpu(stats_gpu), stats_cpu, kTol);
  // NOLINTNEXTLINE(bugprone-integer-division): exact, the count of one channel's elements
  EXPECT_EQ(on_cpu(stats_gpu).to_vector<float>().back(), static_cast<float>(x.numel() / c));
  Moments cpu(c, Device::cpu()), gpu(c, kGpu);
  ops::batch_norm_stats_to_moments(stats_cpu, cpu.running_mean, cpu.running_var, cpu.save_mean,
                                   cpu.save_var, p);
  ops::batch_norm_stats_to_moments(stats_gpu, gpu.running_mean, gpu.running_var, gpu.save_mean,
                                   gpu.save_var, p);
  expect_moments_close(gpu, cpu, kTol);
  Tensor y_gpu = Tensor::empty(shape, DType::f32, kGpu);
  ops::batch_norm_forward_inference(x_gpu, gamma_gpu, beta_gpu, gpu.save_mean, gpu.save_var, y_gpu,
                                    p);

  // Composed, they equal the plain GPU training forward.
  Moments fused(c, kGpu);
  Tensor y_fused = Tensor::empty(shape, DType::f32, kGpu);
  ops::batch_norm_forward_training(x_gpu, gamma_gpu, beta_gpu, y_fused, fused.running_mean,
                                   fused.running_var, fused.save_mean, fused.save_var, p);
  EXPECT_TENSORS_CLOSE(on_cpu(y_gpu), on_cpu(y_fused), kTol);
  EXPECT_TENSORS_CLOSE(on_cpu(gpu.save_mean), on_cpu(fused.save_mean), kTol);
  EXPECT_TENSORS_CLOSE(on_cpu(gpu.save_var), on_cpu(fused.save_var), kTol);
  EXPECT_TENSORS_CLOSE(on_cpu(gpu.running_mean), on_cpu(fused.running_mean), kTol);
  EXPECT_TENSORS_CLOSE(on_cpu(gpu.running_var), on_cpu(fused.running_var), kTol);

  // Backward pieces, from the CPU's saved statistics on both devices.
  Tensor sums_cpu = Tensor::empty({2 * c + 1});
  Tensor sums_gpu = Tensor::empty({2 * c + 1}, DType::f32, kGpu);
  Tensor dgamma_cpu = Tensor::empty({c}), dbeta_cpu = Tensor::empty({c});
  Tensor dgamma_gpu = Tensor::empty({c}, DType::f32, kGpu);
  Tensor dbeta_gpu = Tensor::empty({c}, DType::f32, kGpu);
  const Tensor save_mean = on_gpu(cpu.save_mean), save_var = on_gpu(cpu.save_var);
  ops::batch_norm_backward_reduce(dy, x, cpu.save_mean, cpu.save_var, sums_cpu, dgamma_cpu,
                                  dbeta_cpu, p);
  ops::batch_norm_backward_reduce(dy_gpu, x_gpu, save_mean, save_var, sums_gpu, dgamma_gpu,
                                  dbeta_gpu, p);
  EXPECT_TENSORS_CLOSE(on_cpu(sums_gpu), sums_cpu, kTol);
  EXPECT_TENSORS_CLOSE(on_cpu(dgamma_gpu), dgamma_cpu, kTol);
  EXPECT_TENSORS_CLOSE(on_cpu(dbeta_gpu), dbeta_cpu, kTol);
  Tensor dx_cpu = Tensor::empty(shape);
  Tensor dx_gpu = Tensor::empty(shape, DType::f32, kGpu);
  ops::batch_norm_backward_apply(dy, x, gamma, cpu.save_mean, cpu.save_var, sums_cpu, dx_cpu, p);
  ops::batch_norm_backward_apply(dy_gpu, x_gpu, gamma_gpu, save_mean, save_var, sums_gpu, dx_gpu,
                                 p);
  EXPECT_TENSORS_CLOSE(on_cpu(dx_gpu), dx_cpu, kTol);

  // Composed, they equal the plain GPU backward (cuDNN: its own reduction order).
  Tensor dx_fused = Tensor::empty(shape, DType::f32, kGpu);
  Tensor dgamma_fused = affine ? Tensor::empty({c}, DType::f32, kGpu) : Tensor();
  Tensor dbeta_fused = Tensor::empty({c}, DType::f32, kGpu);
  ops::batch_norm_backward(dy_gpu, x_gpu, gamma_gpu, save_mean, save_var, dx_fused, dgamma_fused,
                           dbeta_fused, p);
  EXPECT_TENSORS_CLOSE(on_cpu(dx_gpu), on_cpu(dx_fused), kCudnnTol);
  if (affine) {
    EXPECT_TENSORS_CLOSE(on_cpu(dgamma_gpu), on_cpu(dgamma_fused), kCudnnTol);
  }
  EXPECT_TENSORS_CLOSE(on_cpu(dbeta_gpu), on_cpu(dbeta_fused), kCudnnTol);
}

TEST(CudaBatchNorm, SyncPiecesMatchCpuAndComposeToThePlainOps) {
  RUCHE_REQUIRE_CUDA();
  check_sync_pieces({3, 5, 7, 9}, true, 400);
  check_sync_pieces({3, 5, 7, 9}, false, 410);
  check_sync_pieces({3, 5}, true, 420);
  check_sync_pieces({1, 2, 3, 3}, true, 430);    // batch 1: statistics over H, W only
  check_sync_pieces({8, 3, 64, 65}, true, 440);  // more values per channel than threads
  // Few channels, many images: each channel's sums split into chunks of images to fill the card.
  check_sync_pieces({4, 3, 224, 224}, true, 450);
  check_sync_pieces({256, 64, 7, 7}, true, 460);
  check_sync_pieces({1000, 3}, true, 470);
}

TEST(CudaBatchNorm, SyncPiecesOfShardsAddUpToTheWholeBatch) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{5, 3, 4, 5};
  const std::int64_t c = shape[1];
  const Tensor x = on_gpu(random_tensor(shape, 500, -2.0f, 1.0f));
  Tensor whole = Tensor::empty({2 * c + 1}, DType::f32, kGpu);
  ops::batch_norm_local_stats(x, whole);
  // Shards along N (views with an offset), their stats summed on the host: the all-reduce's job.
  std::vector<float> summed(2 * c + 1, 0.0f);
  std::int64_t start = 0;
  for (const std::int64_t n : {2, 1, 2}) {
    Tensor local = Tensor::empty({2 * c + 1}, DType::f32, kGpu);
    ops::batch_norm_local_stats(x.narrow(0, start, n), local);
    const std::vector<float> v = on_cpu(local).to_vector<float>();
    for (std::size_t i = 0; i < v.size(); ++i) summed[i] += v[i];
    start += n;
  }
  EXPECT_TENSORS_CLOSE(Tensor::from_vector(summed, {2 * c + 1}), on_cpu(whole), kTol);
  // NOLINTNEXTLINE(bugprone-integer-division): exact, the count of one channel's elements
  EXPECT_EQ(summed.back(), static_cast<float>(x.numel() / c));
}

// Also where a channel's sums are split into chunks (256 images of 64 channels).
TEST(CudaBatchNorm, SyncReductionsAreDeterministic) {
  RUCHE_REQUIRE_CUDA();
  for (const Shape& shape : {Shape{6, 4, 33, 31}, Shape{256, 64, 7, 7}}) {
    SCOPED_TRACE(shape.str());
    const std::int64_t c = shape[1];
    const Tensor x = on_gpu(random_tensor(shape, 600));
    const Tensor dy = on_gpu(random_tensor(shape, 601));
    Moments m(c, kGpu);
    Tensor a = Tensor::empty({2 * c + 1}, DType::f32, kGpu), b = a.clone();
    ops::batch_norm_local_stats(x, a);
    ops::batch_norm_local_stats(x, b);
    EXPECT_EQ(on_cpu(a).to_vector<float>(), on_cpu(b).to_vector<float>());
    ops::batch_norm_stats_to_moments(a, m.running_mean, m.running_var, m.save_mean, m.save_var, {});
    Tensor none;
    ops::batch_norm_backward_reduce(dy, x, m.save_mean, m.save_var, a, none, none, {});
    ops::batch_norm_backward_reduce(dy, x, m.save_mean, m.save_var, b, none, none, {});
    EXPECT_EQ(on_cpu(a).to_vector<float>(), on_cpu(b).to_vector<float>());
  }
}

// ---- bf16 / f16 data with f32 statistics ----

// Values k / 64 with |k| < 256: exact in bf16 and f16, so both devices see the same inputs.
Tensor representable(const Shape& shape, std::uint32_t seed, float low, float high) {
  Tensor t = random_tensor(shape, seed, low, high);
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = std::round(p[i] * 64.0f) / 64.0f;
  return t;
}

// f32 -> 16 bits for values that 16 bits hold exactly (normal, or zero).
std::uint16_t to_bits(float f, DType dtype) {
  const std::uint32_t b = std::bit_cast<std::uint32_t>(f);
  if (dtype == DType::bf16) return static_cast<std::uint16_t>(b >> 16);
  const std::uint32_t sign = (b >> 16) & 0x8000u;
  if ((b & 0x7FFFFFFFu) == 0) return static_cast<std::uint16_t>(sign);
  const std::uint32_t exponent = ((b >> 23) & 0xFFu) - 127 + 15;
  return static_cast<std::uint16_t>(sign | (exponent << 10) | ((b >> 13) & 0x3FFu));
}

float from_bits(std::uint16_t h, DType dtype) {
  if (dtype == DType::bf16) return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
  const float sign = (h & 0x8000u) ? -1.0f : 1.0f;
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
  return sign * std::ldexp(static_cast<float>(1024 + mantissa), exponent - 25);
}

// A CPU f32 tensor of exactly representable values -> a GPU tensor of `dtype`.
Tensor to_gpu_16(const Tensor& t, DType dtype) {
  Tensor h = Tensor::empty(t.shape(), dtype);
  auto* bits = static_cast<std::uint16_t*>(h.raw_data());
  const float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    bits[i] = to_bits(p[i], dtype);
    EXPECT_EQ(from_bits(bits[i], dtype), p[i]) << "not representable: " << p[i];
  }
  return h.to(kGpu);
}

Tensor to_cpu_f32(const Tensor& t) {
  const Tensor h = on_cpu(t);
  const auto* bits = static_cast<const std::uint16_t*>(h.raw_data());
  std::vector<float> v(static_cast<std::size_t>(h.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = from_bits(bits[i], h.dtype());
  return Tensor::from_vector(v, h.shape());
}

// Outputs are rounded to 16 bits once (relative error at most 2^-9 for bf16, 2^-11 for f16), so a
// norm-relative error of a few times that; f32 statistics computed from the same exact inputs
// differ only by the summation order in f32 (cuDNN) or double (ours).
double output_tol(DType dtype) { return dtype == DType::bf16 ? 8e-3 : 2e-3; }
constexpr double kMixedStatsTol = 1e-4;

TEST(CudaBatchNorm, HalfPrecisionDataMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  for (const DType dtype : {DType::bf16, DType::f16}) {
    for (const Shape& shape : {Shape{3, 5, 7, 9}, Shape{6, 5}, Shape{128, 4, 7, 7}}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape.str());
      const std::int64_t c = shape[1];
      ops::BatchNormParams p;
      const Tensor x = representable(shape, 700, -1.0f, 3.0f);
      const Tensor dy = representable(shape, 701, -1.0f, 1.0f);
      const Tensor gamma = random_tensor({c}, 702, 0.5f, 1.5f);
      const Tensor beta = random_tensor({c}, 703);
      const Tensor x16 = to_gpu_16(x, dtype), dy16 = to_gpu_16(dy, dtype);

      // Training forward.
      Moments cpu(c, Device::cpu()), gpu(c, kGpu);
      Tensor y_cpu = Tensor::empty(shape);
      ops::batch_norm_forward_training(x, gamma, beta, y_cpu, cpu.running_mean, cpu.running_var,
                                       cpu.save_mean, cpu.save_var, p);
      Tensor y16 = empty_like_on(x16, kGpu);
      ops::batch_norm_forward_training(x16, on_gpu(gamma), on_gpu(beta), y16, gpu.running_mean,
                                       gpu.running_var, gpu.save_mean, gpu.save_var, p);
      EXPECT_TENSORS_CLOSE(to_cpu_f32(y16), y_cpu, output_tol(dtype));
      expect_moments_close(gpu, cpu, kMixedStatsTol);

      // Inference with the CPU's batch statistics.
      Tensor yi_cpu = Tensor::empty(shape);
      ops::batch_norm_forward_inference(x, gamma, beta, cpu.save_mean, cpu.save_var, yi_cpu, p);
      Tensor yi16 = empty_like_on(x16, kGpu);
      ops::batch_norm_forward_inference(x16, on_gpu(gamma), on_gpu(beta), on_gpu(cpu.save_mean),
                                        on_gpu(cpu.save_var), yi16, p);
      EXPECT_TENSORS_CLOSE(to_cpu_f32(yi16), yi_cpu, output_tol(dtype));

      // Backward (cuDNN) and the sync pieces (ours).
      Tensor dx_cpu = Tensor::empty(shape), dgamma_cpu = Tensor::empty({c});
      Tensor dbeta_cpu = Tensor::empty({c});
      ops::batch_norm_backward(dy, x, gamma, cpu.save_mean, cpu.save_var, dx_cpu, dgamma_cpu,
                               dbeta_cpu, p);
      Tensor dx16 = empty_like_on(x16, kGpu);
      Tensor dgamma_gpu = Tensor::empty({c}, DType::f32, kGpu);
      Tensor dbeta_gpu = Tensor::empty({c}, DType::f32, kGpu);
      const Tensor save_mean = on_gpu(cpu.save_mean), save_var = on_gpu(cpu.save_var);
      ops::batch_norm_backward(dy16, x16, on_gpu(gamma), save_mean, save_var, dx16, dgamma_gpu,
                               dbeta_gpu, p);
      EXPECT_TENSORS_CLOSE(to_cpu_f32(dx16), dx_cpu, output_tol(dtype));
      EXPECT_TENSORS_CLOSE(on_cpu(dgamma_gpu), dgamma_cpu, kMixedStatsTol);
      EXPECT_TENSORS_CLOSE(on_cpu(dbeta_gpu), dbeta_cpu, kMixedStatsTol);

      Tensor stats_cpu = Tensor::empty({2 * c + 1});
      Tensor stats_gpu = Tensor::empty({2 * c + 1}, DType::f32, kGpu);
      ops::batch_norm_local_stats(x, stats_cpu);
      ops::batch_norm_local_stats(x16, stats_gpu);
      EXPECT_TENSORS_CLOSE(on_cpu(stats_gpu), stats_cpu, kTol);
      Tensor sums_cpu = Tensor::empty({2 * c + 1});
      Tensor sums_gpu = Tensor::empty({2 * c + 1}, DType::f32, kGpu);
      Tensor none;
      ops::batch_norm_backward_reduce(dy, x, cpu.save_mean, cpu.save_var, sums_cpu, none, none, p);
      ops::batch_norm_backward_reduce(dy16, x16, save_mean, save_var, sums_gpu, none, none, p);
      EXPECT_TENSORS_CLOSE(on_cpu(sums_gpu), sums_cpu, kTol);
      Tensor dxa_cpu = Tensor::empty(shape);
      Tensor dxa16 = empty_like_on(x16, kGpu);
      ops::batch_norm_backward_apply(dy, x, gamma, cpu.save_mean, cpu.save_var, sums_cpu, dxa_cpu,
                                     p);
      ops::batch_norm_backward_apply(dy16, x16, on_gpu(gamma), save_mean, save_var, sums_gpu, dxa16,
                                     p);
      EXPECT_TENSORS_CLOSE(to_cpu_f32(dxa16), dxa_cpu, output_tol(dtype));
    }
  }
}

// ---- argument checks ----

// The message names the op and the argument.
void expect_error(const std::string& message, const std::string& op, const std::string& arg) {
  EXPECT_NE(message.find(op), std::string::npos) << message;
  EXPECT_NE(message.find(arg), std::string::npos) << message;
}

TEST(CudaBatchNorm, ArgumentChecksThrow) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{3, 4, 5, 5};
  const std::int64_t c = 4;
  ops::BatchNormParams p;
  const Tensor x = on_gpu(random_tensor(shape, 800));
  Tensor y = Tensor::empty(shape, DType::f32, kGpu);
  Moments m(c, kGpu);
  const Tensor gamma = on_gpu(random_tensor({c}, 801));
  const Tensor bad_gamma = on_gpu(random_tensor({c + 1}, 802));
  const Tensor x3 = on_gpu(random_tensor({3, 4, 5}, 803));
  Tensor wrong_y = Tensor::empty({3, 4, 5, 4}, DType::f32, kGpu);
  Tensor cpu_mean = Tensor::zeros({c});
  Tensor none;
  const char* train = "batch_norm_forward_training";

  expect_error(error_of([&] {
                 Tensor y3 = Tensor::empty({3, 4, 5}, DType::f32, kGpu);
                 ops::batch_norm_forward_training(x3, gamma, none, y3, m.running_mean,
                                                  m.running_var, m.save_mean, m.save_var, p);
               }),
               train, "x");
  expect_error(error_of([&] {
                 ops::batch_norm_forward_training(x, bad_gamma, none, y, m.running_mean,
                                                  m.running_var, m.save_mean, m.save_var, p);
               }),
               train, "gamma");
  expect_error(error_of([&] {
                 ops::batch_norm_forward_training(x, gamma, none, wrong_y, m.running_mean,
                                                  m.running_var, m.save_mean, m.save_var, p);
               }),
               train, "y");
  expect_error(error_of([&] {
                 ops::batch_norm_forward_training(x, gamma, none, y, cpu_mean, m.running_var,
                                                  m.save_mean, m.save_var, p);
               }),
               train, "different devices");  // ops.cc's dispatch names the op, not the tensor
  expect_error(error_of([&] {                // one value per channel: no variance to train with
                 const Tensor x1 = on_gpu(random_tensor({1, c}, 804));
                 Tensor y1 = Tensor::empty({1, c}, DType::f32, kGpu);
                 ops::batch_norm_forward_training(x1, gamma, none, y1, m.running_mean,
                                                  m.running_var, m.save_mean, m.save_var, p);
               }),
               train, "more than 1 value");
  expect_error(error_of([&] {
                 const Tensor xi = Tensor::zeros(shape, DType::i32, kGpu);
                 ops::batch_norm_forward_inference(xi, gamma, none, m.running_mean, m.running_var,
                                                   y, p);
               }),
               "batch_norm_forward_inference", "x");
  expect_error(error_of([&] {
                 Tensor dx = Tensor::empty(shape, DType::f32, kGpu);
                 Tensor dgamma = Tensor::empty({c}, DType::f32, kGpu);  // but no gamma
                 ops::batch_norm_backward(x, x, none, m.save_mean, m.save_var, dx, dgamma, none, p);
               }),
               "batch_norm_backward", "dgamma");
  expect_error(error_of([&] {
                 Tensor stats = Tensor::empty({2 * c}, DType::f32, kGpu);
                 ops::batch_norm_local_stats(x, stats);
               }),
               "batch_norm_local_stats", "stats");
  expect_error(error_of([&] {
                 const Tensor stats = Tensor::empty({2 * c}, DType::f32, kGpu);
                 ops::batch_norm_stats_to_moments(stats, m.running_mean, m.running_var, m.save_mean,
                                                  m.save_var, p);
               }),
               "batch_norm_stats_to_moments", "stats");
  expect_error(error_of([&] {
                 Tensor sums = Tensor::empty({2 * c + 1}, DType::f32, kGpu);
                 ops::batch_norm_backward_reduce(wrong_y, x, m.save_mean, m.save_var, sums, none,
                                                 none, p);
               }),
               "batch_norm_backward_reduce", "dy");
  expect_error(error_of([&] {
                 const Tensor sums = Tensor::empty({2 * c + 1}, DType::f32, kGpu);
                 Tensor dx = Tensor::empty(shape, DType::f32, kGpu);
                 ops::batch_norm_backward_apply(x, x, bad_gamma, m.save_mean, m.save_var, sums, dx,
                                                p);
               }),
               "batch_norm_backward_apply", "gamma");
}

}  // namespace
}  // namespace ruche
