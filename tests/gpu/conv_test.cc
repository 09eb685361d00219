// The cuDNN convolution against its CPU twin (oneDNN) on random inputs: forward, backward data,
// backward weights and bias, for the shapes a CNN uses (3x3, 1x1, 7x7 stride 2, dilation, groups,
// depthwise, no bias, batch 1, odd sizes); strict fp32, TF32, bf16 and f16 data; the algorithm
// cache, the workspace limit, benchmark mode; the argument checks.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor/half.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

// ops/cuda/handles.h is internal (it includes cuDNN's headers); the one function a test here needs.
namespace ruche::ops::gpu {
void* workspace(std::size_t bytes);
}  // namespace ruche::ops::gpu

namespace ruche {
namespace {

using testing::on_cpu;
using testing::on_gpu;
using testing::random_tensor;

// cuDNN's algorithms (implicit GEMM, Winograd, FFT) sum in other orders than oneDNN, and the
// transform-based ones add rounding of their own: 1e-4 norm-relative. Our own bias kernels and
// the exactly reproducible cases get 1e-5.
constexpr double kConvTol = 1e-4;
constexpr double kTol = 1e-5;

// Restores the process-wide GPU math settings a test changes.
class MathGuard {
 public:
  explicit MathGuard(const ops::GpuMath& math) : saved_(ops::gpu_math()) {
    ops::set_gpu_math(math);
  }
  ~MathGuard() { ops::set_gpu_math(saved_); }
  MathGuard(const MathGuard&) = delete;
  MathGuard& operator=(const MathGuard&) = delete;

 private:
  ops::GpuMath saved_;
};

struct ConvCase {
  const char* name;
  Shape x, w;
  ops::Conv2dParams p;
  bool bias;
};

ops::Conv2dParams params(int stride_h, int stride_w, int pad_h, int pad_w, int dilation = 1,
                         int groups = 1) {
  ops::Conv2dParams p;
  p.stride_h = stride_h;
  p.stride_w = stride_w;
  p.pad_h = pad_h;
  p.pad_w = pad_w;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {"3x3 pad 1", {2, 3, 9, 9}, {4, 3, 3, 3}, params(1, 1, 1, 1), true},
      {"1x1", {3, 8, 5, 7}, {6, 8, 1, 1}, params(1, 1, 0, 0), true},
      {"7x7 stride 2 pad 3", {2, 3, 19, 21}, {8, 3, 7, 7}, params(2, 2, 3, 3), true},
      {"dilation 2", {2, 4, 11, 10}, {5, 4, 3, 3}, params(1, 1, 2, 2, 2), true},
      {"groups 2", {2, 6, 8, 8}, {4, 3, 3, 3}, params(1, 1, 1, 1, 1, 2), true},
      {"depthwise stride 2", {2, 5, 9, 7}, {5, 1, 3, 3}, params(2, 2, 1, 1, 1, 5), true},
      {"no bias batch 1 odd", {1, 3, 13, 11}, {7, 3, 5, 3}, params(3, 2, 2, 1), false},
      {"wide 3x3 no bias", {4, 32, 14, 14}, {64, 32, 3, 3}, params(1, 1, 1, 1), false},
  };
  return cases;
}

// The four results of one case: y, dx, dw, db (db undefined without bias).
struct ConvResults {
  Tensor y, dx, dw, db;
};

ConvResults run_conv(const ConvCase& c, const Tensor& x, const Tensor& w, const Tensor& b,
                     const Tensor& dy) {
  const Device d = x.device();
  const DType t = x.dtype();
  const Shape y_shape = ops::conv2d_output_shape(c.x, c.w, c.p);
  ConvResults r;
  r.y = Tensor::empty(y_shape, t, d);
  r.dx = Tensor::empty(c.x, t, d);
  r.dw = Tensor::empty(c.w, t, d);
  if (c.bias) r.db = Tensor::empty({c.w[0]}, t, d);
  // Garbage in the outputs first: every op must overwrite, never add to, what it writes.
  for (Tensor* out : {&r.y, &r.dx, &r.dw, &r.db}) {
    if (out->defined() && t == DType::f32) out->fill(123.0f);
  }
  ops::conv2d_forward(x, w, b, r.y, c.p);
  ops::conv2d_backward_data(dy, w, r.dx, c.p);
  ops::conv2d_backward_weights(x, dy, r.dw, r.db, c.p);
  return r;
}

struct ConvInputs {
  Tensor x, w, b, dy;  // CPU f32
};

ConvInputs inputs_for(const ConvCase& c, std::uint32_t seed) {
  ConvInputs in;
  in.x = random_tensor(c.x, seed);
  in.w = random_tensor(c.w, seed + 1);
  if (c.bias) in.b = random_tensor({c.w[0]}, seed + 2);
  in.dy = random_tensor(ops::conv2d_output_shape(c.x, c.w, c.p), seed + 3);
  return in;
}

Tensor gpu_or_undefined(const Tensor& t) { return t.defined() ? on_gpu(t) : Tensor(); }

// Runs every case on CPU and GPU (f32) under `math` and compares at `tol`.
void expect_f32_cases_match_cpu(const ops::GpuMath& math, double tol) {
  MathGuard guard(math);
  std::uint32_t seed = 10;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name);
    const ConvInputs in = inputs_for(c, seed += 4);
    const ConvResults cpu = run_conv(c, in.x, in.w, in.b, in.dy);
    const ConvResults gpu =
        run_conv(c, on_gpu(in.x), on_gpu(in.w), gpu_or_undefined(in.b), on_gpu(in.dy));
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.y), cpu.y, tol);
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.dx), cpu.dx, tol);
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.dw), cpu.dw, tol);
    if (c.bias) {
      EXPECT_TENSORS_CLOSE(on_cpu(gpu.db), cpu.db, kTol);
    }
  }
}

TEST(CudaConv, StrictFp32MatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  expect_f32_cases_match_cpu(ops::GpuMath{}, kConvTol);
}

// TF32 rounds each operand to a 10-bit mantissa (relative error up to 2^-11 ~ 4.9e-4 per
// operand, ~1e-3 per product); random signs make the errors of a sum partly cancel, so the
// norm-relative error of a result is ~1e-3 at worst: 5e-3 leaves room and still catches a wrong
// result (those are off by O(1)).
TEST(CudaConv, Tf32MatchesCpuWithinTf32Rounding) {
  RUCHE_REQUIRE_CUDA();
  ops::GpuMath math;
  math.precision = ops::Precision::tf32;
  expect_f32_cases_match_cpu(math, 5e-3);
}

// Strict fp32 must not use TF32: with full-mantissa inputs a TF32 1x1 convolution is off by
// ~3e-4 norm-relative, while fp32 sums of 64 products agree with the CPU to ~1e-7.
TEST(CudaConv, StrictFp32HasNoTf32Rounding) {
  RUCHE_REQUIRE_CUDA();
  MathGuard guard(ops::GpuMath{});
  const ConvCase c{"1x1 64 channels", {4, 64, 8, 8}, {32, 64, 1, 1}, params(1, 1, 0, 0), false};
  const Tensor x = random_tensor(c.x, 90, 1.0f, 2.0f);
  const Tensor w = random_tensor(c.w, 91);
  Tensor y = Tensor::empty(ops::conv2d_output_shape(c.x, c.w, c.p));
  ops::conv2d_forward(x, w, Tensor(), y, c.p);
  Tensor y_gpu = Tensor::empty(y.shape(), DType::f32, Device::cuda(0));
  ops::conv2d_forward(on_gpu(x), on_gpu(w), Tensor(), y_gpu, c.p);
  EXPECT_TENSORS_CLOSE(on_cpu(y_gpu), y, 2e-5);
}

// ---- bf16 / f16 data, cast on the host by engine/tensor/half.h (tests/mpi/half_test.cc) ----
// A CPU f32 tensor as `dtype` (bf16 or f16), on the CPU.
Tensor to_half(const Tensor& t, DType dtype) {
  const std::vector<float> v = t.to_vector<float>();
  std::vector<std::uint16_t> bits(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    bits[i] = dtype == DType::bf16 ? half::bf16_from_f32(v[i]) : half::f16_from_f32(v[i]);
  }
  return Tensor::from_blob(bits.data(), t.shape(), dtype).clone();
}

Tensor to_half_on_gpu(const Tensor& t, DType dtype) {
  return t.defined() ? on_gpu(to_half(t, dtype)) : Tensor();
}

// A bf16 / f16 tensor (any device) as CPU f32.
Tensor half_to_f32(const Tensor& t) {
  const Tensor host = t.to(Device::cpu());
  const auto* bits = static_cast<const std::uint16_t*>(host.raw_data());
  std::vector<float> v(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = t.dtype() == DType::bf16 ? half::bf16_to_f32(bits[i]) : half::f16_to_f32(bits[i]);
  }
  return Tensor::from_vector(v, t.shape());
}

// The CPU tensor rounded through `dtype`, so the reference sees the very inputs the GPU sees.
Tensor rounded(const Tensor& t, DType dtype) {
  return t.defined() ? half_to_f32(to_half(t, dtype)) : Tensor();
}

// Inputs rounded to bf16 / f16 (the reference uses the rounded values); the GPU accumulates in
// fp32 and rounds each output once (y twice with the bias add). One rounding has relative error
// up to 2^-9 (bf16) or 2^-11 (f16), rms about a third of that, so the norm-relative error is about
// 1e-3 (bf16) or 3e-4 (f16); the tolerances 1e-2 and 3e-3 leave room for algorithms that keep
// transformed intermediates in the data type, and still catch a wrong result.
void expect_half_cases_match_cpu(DType dtype, ops::Precision precision, double tol) {
  ops::GpuMath math;
  math.precision = precision;
  MathGuard guard(math);
  std::uint32_t seed = 200;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name);
    ConvInputs in = inputs_for(c, seed += 4);
    in = {rounded(in.x, dtype), rounded(in.w, dtype), rounded(in.b, dtype), rounded(in.dy, dtype)};
    const ConvResults cpu = run_conv(c, in.x, in.w, in.b, in.dy);
    const ConvResults gpu = run_conv(c, to_half_on_gpu(in.x, dtype), to_half_on_gpu(in.w, dtype),
                                     to_half_on_gpu(in.b, dtype), to_half_on_gpu(in.dy, dtype));
    EXPECT_EQ(gpu.y.dtype(), dtype);
    EXPECT_TENSORS_CLOSE(half_to_f32(gpu.y), cpu.y, tol);
    EXPECT_TENSORS_CLOSE(half_to_f32(gpu.dx), cpu.dx, tol);
    EXPECT_TENSORS_CLOSE(half_to_f32(gpu.dw), cpu.dw, tol);
    if (c.bias) {
      EXPECT_TENSORS_CLOSE(half_to_f32(gpu.db), cpu.db, tol);
    }
  }
}

TEST(CudaConv, Bf16DataMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  expect_half_cases_match_cpu(DType::bf16, ops::Precision::bf16, 1e-2);
}

TEST(CudaConv, F16DataMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  expect_half_cases_match_cpu(DType::f16, ops::Precision::fp16, 3e-3);
}

// db is a double sum rounded once to the data type. Sums just above a 16-bit tie catch a second
// rounding through float (float lands on the tie, which then rounds to even, i.e. down):
// bf16: 1 + 2^-8 + 2^-30 must give 1 + 2^-7; f16: 1 + 2^-11 + 2^-24 must give 1 + 2^-10.
TEST(CudaConv, HalfBiasGradientIsRoundedOnce) {
  RUCHE_REQUIRE_CUDA();
  const ops::Conv2dParams p = params(1, 1, 0, 0);
  for (const DType dtype : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const bool bf16 = dtype == DType::bf16;
    const std::vector<float> dy_values = {1.0f, bf16 ? 0x1.0p-8f : 0x1.0p-11f,
                                          bf16 ? 0x1.0p-30f : 0x1.0p-24f};
    const Tensor dy = to_half_on_gpu(Tensor::from_vector(dy_values, {1, 1, 1, 3}), dtype);
    EXPECT_EQ(half_to_f32(dy).to_vector<float>(), dy_values);  // exact in the data type
    const Tensor x = to_half_on_gpu(Tensor::zeros({1, 1, 1, 3}), dtype);
    Tensor dw = Tensor::empty({1, 1, 1, 1}, dtype, Device::cuda(0));
    Tensor db = Tensor::empty({1}, dtype, Device::cuda(0));
    ops::conv2d_backward_weights(x, dy, dw, db, p);
    EXPECT_EQ(half_to_f32(db).to_vector<float>(),
              std::vector<float>{bf16 ? 1.0f + 0x1.0p-7f : 1.0f + 0x1.0p-10f});
  }
}

// The bias gradient of layers with few channels and many images: the reduction splits each
// channel into chunks of images (ops/cuda/channel_reduction.h) to fill the card, and still equals
// the CPU's sum and gives the same bits on a rerun.
TEST(CudaConv, BiasGradientOfFewChannelsAndManyImagesMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  const ConvCase cases[] = {
      {"4 x 3 x 224 x 224", {4, 3, 224, 224}, {3, 3, 1, 1}, params(1, 1, 0, 0), true},
      {"256 x 64 x 7 x 7", {256, 64, 7, 7}, {64, 64, 1, 1}, params(1, 1, 0, 0), true},
      {"1000 x 5 x 1 x 1", {1000, 8, 1, 1}, {5, 8, 1, 1}, params(1, 1, 0, 0), true}};
  std::uint32_t seed = 900;
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ConvInputs in = inputs_for(c, seed += 4);
    const ConvResults cpu = run_conv(c, in.x, in.w, in.b, in.dy);
    const ConvResults gpu = run_conv(c, on_gpu(in.x), on_gpu(in.w), on_gpu(in.b), on_gpu(in.dy));
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.dw), cpu.dw, kConvTol);
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.db), cpu.db, kTol);
    const ConvResults rerun = run_conv(c, on_gpu(in.x), on_gpu(in.w), on_gpu(in.b), on_gpu(in.dy));
    EXPECT_EQ(on_cpu(rerun.db).to_vector<float>(), on_cpu(gpu.db).to_vector<float>());
  }
}

// TF32 keeps fp32's exponent: values far outside f16's range (above 65504, below 6e-8) come out
// as on the CPU, so no algorithm may convert the data to f16
// (CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION), chosen by the heuristic or by timing.
TEST(CudaConv, Tf32KeepsTheFp32Range) {
  RUCHE_REQUIRE_CUDA();
  for (const bool benchmark : {false, true}) {
    SCOPED_TRACE(benchmark ? "benchmark" : "heuristic");
    ops::GpuMath math;
    math.precision = ops::Precision::tf32;
    math.cudnn_benchmark = benchmark;
    MathGuard guard(math);
    const ConvCase c{"fp32 range", {2, 16, 12, 12}, {16, 16, 3, 3}, params(1, 1, 1, 1), true};
    const Tensor x = random_tensor(c.x, 500, 1e5f, 2e5f);
    const Tensor w = random_tensor(c.w, 501);
    const Tensor b = random_tensor({c.w[0]}, 502);
    const Tensor dy = random_tensor(ops::conv2d_output_shape(c.x, c.w, c.p), 503, -2e-9f, 2e-9f);
    const ConvResults cpu = run_conv(c, x, w, b, dy);
    const ConvResults gpu = run_conv(c, on_gpu(x), on_gpu(w), on_gpu(b), on_gpu(dy));
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.y), cpu.y, 5e-3);
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.dx), cpu.dx, 5e-3);
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.dw), cpu.dw, 5e-3);
    EXPECT_TENSORS_CLOSE(on_cpu(gpu.db), cpu.db, kTol);
  }
}

// ---- the algorithm cache ----
TEST(CudaConv, AlgorithmIsChosenOncePerShape) {
  RUCHE_REQUIRE_CUDA();
  MathGuard guard(ops::GpuMath{});
  // A shape no other test uses, so the first call here is the first for it.
  const ConvCase c{"cache", {3, 7, 10, 9}, {5, 7, 3, 3}, params(1, 1, 1, 1), true};
  const ConvInputs in = inputs_for(c, 300);
  const Tensor x = on_gpu(in.x), w = on_gpu(in.w), b = on_gpu(in.b), dy = on_gpu(in.dy);
  EXPECT_FALSE(ops::gpu::conv_algorithms(x, w, c.p).cached);

  const std::size_t shapes = ops::gpu::conv_algorithm_cache_size();
  const std::uint64_t searches = ops::gpu::conv_algorithm_searches();
  const ConvResults first = run_conv(c, x, w, b, dy);
  EXPECT_EQ(ops::gpu::conv_algorithm_cache_size(), shapes + 1);
  EXPECT_EQ(ops::gpu::conv_algorithm_searches(), searches + 3);  // one per direction
  const ops::gpu::ConvAlgorithms chosen = ops::gpu::conv_algorithms(x, w, c.p);
  ASSERT_TRUE(chosen.cached);
  EXPECT_GE(chosen.forward, 0);
  EXPECT_GE(chosen.backward_data, 0);
  EXPECT_GE(chosen.backward_weights, 0);

  // The second call with the same shapes finds everything cached, and gives the same numbers.
  const ConvResults second = run_conv(c, x, w, b, dy);
  EXPECT_EQ(ops::gpu::conv_algorithm_cache_size(), shapes + 1);
  EXPECT_EQ(ops::gpu::conv_algorithm_searches(), searches + 3);
  EXPECT_TENSORS_CLOSE(on_cpu(second.y), on_cpu(first.y), 0.0);
  EXPECT_TENSORS_CLOSE(on_cpu(second.dx), on_cpu(first.dx), 0.0);
  EXPECT_TENSORS_CLOSE(on_cpu(second.dw), on_cpu(first.dw), 0.0);
  EXPECT_TENSORS_CLOSE(on_cpu(second.db), on_cpu(first.db), 0.0);

  // Another precision is another entry: a choice made under TF32 never serves strict fp32.
  ops::GpuMath tf32;
  tf32.precision = ops::Precision::tf32;
  MathGuard tf32_guard(tf32);
  EXPECT_FALSE(ops::gpu::conv_algorithms(x, w, c.p).cached);
  run_conv(c, x, w, b, dy);
  EXPECT_EQ(ops::gpu::conv_algorithm_cache_size(), shapes + 2);
}

TEST(CudaConv, WorkspaceLimitIsHonoured) {
  RUCHE_REQUIRE_CUDA();
  ops::GpuMath math;
  math.workspace_limit = 0;
  MathGuard guard(math);
  // Big enough that cuDNN's favourites (FFT, Winograd, GEMM) would want workspace.
  const ConvCase c{"no workspace", {8, 16, 24, 24}, {32, 16, 5, 5}, params(1, 1, 2, 2), true};
  const ConvInputs in = inputs_for(c, 400);
  const ConvResults cpu = run_conv(c, in.x, in.w, in.b, in.dy);
  const Tensor x = on_gpu(in.x), w = on_gpu(in.w);
  const ConvResults gpu = run_conv(c, x, w, on_gpu(in.b), on_gpu(in.dy));
  const ops::gpu::ConvAlgorithms chosen = ops::gpu::conv_algorithms(x, w, c.p);
  ASSERT_TRUE(chosen.cached);
  EXPECT_EQ(chosen.forward_workspace, 0u);
  EXPECT_EQ(chosen.backward_data_workspace, 0u);
  EXPECT_EQ(chosen.backward_weights_workspace, 0u);
  EXPECT_TENSORS_CLOSE(on_cpu(gpu.y), cpu.y, kConvTol);
  EXPECT_TENSORS_CLOSE(on_cpu(gpu.dx), cpu.dx, kConvTol);
  EXPECT_TENSORS_CLOSE(on_cpu(gpu.dw), cpu.dw, kConvTol);
}

// A workspace request the device cannot meet throws; the allocator gave its cache back to the
// driver on the way, the old workspace block included, so the next request must allocate afresh
// rather than hand out that freed block.
TEST(CudaConv, WorkspaceSurvivesAFailedGrowth) {
  RUCHE_REQUIRE_CUDA();
  ASSERT_NE(ops::gpu::workspace(1 << 20), nullptr);
  EXPECT_THROW(ops::gpu::workspace(std::size_t{1} << 50), Error);  // 1 PiB
  const std::uint64_t requests = cuda::allocator_stats(0).requests;
  ASSERT_NE(ops::gpu::workspace(1 << 20), nullptr);
  EXPECT_EQ(cuda::allocator_stats(0).requests, requests + 1);
  // The convolutions that borrow it still work.
  expect_f32_cases_match_cpu(ops::GpuMath{}, kConvTol);
}

// Growing the workspace gives the old block back to the driver: the cache does not keep it (no
// later request asks for a size the workspace has outgrown).
TEST(CudaConv, WorkspaceGrowthFreesTheOldBlock) {
  RUCHE_REQUIRE_CUDA();
  // Above the default limit of 512 MiB, so larger than any workspace an earlier test asked for.
  ASSERT_NE(ops::gpu::workspace(std::size_t{600} << 20), nullptr);
  const cuda::AllocatorStats before = cuda::allocator_stats(0);
  ASSERT_NE(ops::gpu::workspace(std::size_t{700} << 20), nullptr);
  const cuda::AllocatorStats after = cuda::allocator_stats(0);
  EXPECT_EQ(after.cached_bytes, before.cached_bytes) << "the old workspace went into the cache";
  EXPECT_EQ(after.device_frees, before.device_frees + 1);
}

TEST(CudaConv, BenchmarkModeMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  ops::GpuMath math;
  math.cudnn_benchmark = true;
  // Benchmark mode is its own cache entry per shape: every direction of every case not yet seen
  // in this mode is timed (all of them, unless the test runs twice in one process).
  std::uint64_t new_shapes = 0;
  {
    MathGuard guard(math);
    for (const ConvCase& c : conv_cases()) {
      const Tensor x = Tensor::empty(c.x, DType::f32, Device::cuda(0));
      const Tensor w = Tensor::empty(c.w, DType::f32, Device::cuda(0));
      if (!ops::gpu::conv_algorithms(x, w, c.p).cached) ++new_shapes;
    }
  }
  const std::uint64_t searches = ops::gpu::conv_algorithm_searches();
  expect_f32_cases_match_cpu(math, kConvTol);
  EXPECT_EQ(ops::gpu::conv_algorithm_searches(), searches + 3 * new_shapes);
}

// ---- argument checks ----
TEST(CudaConv, WrongShapesDtypesAndDevicesThrow) {
  RUCHE_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  const ops::Conv2dParams p = params(1, 1, 1, 1);
  const Tensor x = Tensor::zeros({2, 3, 8, 8}, DType::f32, gpu);
  const Tensor w = Tensor::zeros({4, 3, 3, 3}, DType::f32, gpu);
  const Tensor b = Tensor::zeros({4}, DType::f32, gpu);
  Tensor y = Tensor::zeros({2, 4, 8, 8}, DType::f32, gpu);
  Tensor dx = Tensor::zeros({2, 3, 8, 8}, DType::f32, gpu);
  Tensor dw = Tensor::zeros({4, 3, 3, 3}, DType::f32, gpu);
  Tensor db = Tensor::zeros({4}, DType::f32, gpu);
  // The good call works, so the throws below are the checks' doing.
  EXPECT_NO_THROW(ops::conv2d_forward(x, w, b, y, p));

  Tensor y_wrong = Tensor::zeros({2, 4, 7, 8}, DType::f32, gpu);
  EXPECT_THROW(ops::conv2d_forward(x, w, b, y_wrong, p), Error);
  EXPECT_THROW(ops::conv2d_forward(x, Tensor::zeros({4, 2, 3, 3}, DType::f32, gpu), b, y, p),
               Error);  // channels do not match
  EXPECT_THROW(ops::conv2d_forward(x, w, Tensor::zeros({3}, DType::f32, gpu), y, p), Error);
  EXPECT_THROW(ops::conv2d_forward(x, Tensor::zeros({4, 3, 3, 3}, DType::bf16, gpu), b, y, p),
               Error);  // w's dtype differs from x's
  // Not a floating type.
  EXPECT_THROW(ops::conv2d_forward(Tensor::zeros({2, 3, 8, 8}, DType::i32, gpu),
                                   Tensor::zeros({4, 3, 3, 3}, DType::i32, gpu),
                                   Tensor::zeros({4}, DType::i32, gpu), y, p),
               Error);
  // Mixed devices.
  EXPECT_THROW(ops::conv2d_forward(on_cpu(x), w, b, y, p), Error);
  // The CUDA op itself refuses a tensor that is not on a CUDA device.
  Tensor y_cpu = Tensor::zeros({2, 4, 8, 8});
  EXPECT_THROW(ops::gpu::conv2d_forward(x, w, b, y_cpu, p), Error);
  ops::Conv2dParams groups_3 = p;
  groups_3.groups = 3;  // 4 output channels do not divide into 3 groups
  EXPECT_THROW(ops::conv2d_forward(x, Tensor::zeros({4, 1, 3, 3}, DType::f32, gpu), b, y, groups_3),
               Error);

  EXPECT_NO_THROW(ops::conv2d_backward_data(y, w, dx, p));
  Tensor dx_wrong = Tensor::zeros({2, 3, 9, 8}, DType::f32, gpu);
  EXPECT_THROW(ops::conv2d_backward_data(y, w, dx_wrong, p), Error);
  EXPECT_THROW(ops::conv2d_backward_data(y_wrong, w, dx, p), Error);

  EXPECT_NO_THROW(ops::conv2d_backward_weights(x, y, dw, db, p));
  Tensor db_wrong = Tensor::zeros({5}, DType::f32, gpu);
  EXPECT_THROW(ops::conv2d_backward_weights(x, y, dw, db_wrong, p), Error);
  Tensor dw_wrong = Tensor::zeros({4, 3, 3, 3}, DType::f16, gpu);
  EXPECT_THROW(ops::conv2d_backward_weights(x, y, dw_wrong, db, p), Error);
  EXPECT_THROW(ops::conv2d_backward_weights(x, y_wrong, dw, db, p), Error);
}

}  // namespace
}  // namespace ruche
