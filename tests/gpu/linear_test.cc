// The CUDA linear layer (cuBLAS + our bias kernels) against its CPU twin on random inputs: fp32
// strict at 1e-5, TF32, bf16 and f16 with the tolerances their roundings allow, and the argument
// checks.
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

using testing::expect_error;
using testing::narrowed;
using testing::on_cpu;
using testing::on_gpu;
using testing::random_tensor;
using testing::widened;

constexpr double kTol = 1e-5;

struct LinearShape {
  std::int64_t n, in, out;
};

// N = 1, odd sizes, one block of the db kernel and several, and in = 1024: there a TF32 product
// (10 mantissa bits) would be ~1e-3 off, so the fp32 test also proves fp32 is strict.
const LinearShape kShapes[] = {{1, 1, 1},    {1, 7, 3},      {5, 13, 9},
                               {33, 65, 17}, {2, 1024, 100}, {128, 300, 257}};

// The results of the three linear ops.
struct LinearResults {
  Tensor y, dx, dw, db;
};

// Runs forward, backward_data and backward_weights on the inputs' device; y, dx, dw and db get
// `out_dtype`; db only when b is defined.
LinearResults run_linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dy,
                         DType out_dtype) {
  const Device d = x.device();
  LinearResults r;
  r.y = Tensor::empty({x.size(0), w.size(0)}, out_dtype, d);
  ops::linear_forward(x, w, b, r.y);
  r.dx = Tensor::empty(x.shape(), out_dtype, d);
  ops::linear_backward_data(dy, w, r.dx);
  r.dw = Tensor::empty(w.shape(), out_dtype, d);
  if (b.defined()) r.db = Tensor::empty(b.shape(), out_dtype, d);
  ops::linear_backward_weights(x, dy, r.dw, r.db);
  return r;
}

// A GPU result as a cpu f32 tensor.
Tensor result_f32(const Tensor& t) { return widened(on_cpu(t)); }

// Sets gpu_math().precision for one scope.
class PrecisionScope {
 public:
  explicit PrecisionScope(ops::Precision p) : saved_(ops::gpu_math()) {
    ops::GpuMath m = saved_;
    m.precision = p;
    ops::set_gpu_math(m);
  }
  ~PrecisionScope() { ops::set_gpu_math(saved_); }
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  ops::GpuMath saved_;
};

// Compares every result of the GPU run with the CPU run's at `tol`.
void expect_results_close(const LinearResults& gpu, const LinearResults& cpu, double tol) {
  EXPECT_TENSORS_CLOSE(result_f32(gpu.y), cpu.y, tol) << "y";
  EXPECT_TENSORS_CLOSE(result_f32(gpu.dx), cpu.dx, tol) << "dx";
  EXPECT_TENSORS_CLOSE(result_f32(gpu.dw), cpu.dw, tol) << "dw";
  if (cpu.db.defined()) {
    EXPECT_TENSORS_CLOSE(result_f32(gpu.db), cpu.db, tol) << "db";
  }
}

// Random x, w, b (when `bias`) and dy of one shape.
struct LinearInputs {
  Tensor x, w, b, dy;
};
LinearInputs random_inputs(const LinearShape& s, bool bias) {
  return {random_tensor({s.n, s.in}, 1), random_tensor({s.out, s.in}, 2),
          bias ? random_tensor({s.out}, 3) : Tensor(), random_tensor({s.n, s.out}, 4)};
}

std::string name_of(const LinearShape& s, bool bias) {
  return "N " + std::to_string(s.n) + " in " + std::to_string(s.in) + " out " +
         std::to_string(s.out) + (bias ? " with bias" : " without bias");
}

TEST(CudaLinear, Fp32MatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  const PrecisionScope strict(ops::Precision::fp32);
  for (const auto& s : kShapes) {
    for (bool bias : {false, true}) {
      SCOPED_TRACE(name_of(s, bias));
      const LinearInputs in = random_inputs(s, bias);
      const LinearResults cpu = run_linear(in.x, in.w, in.b, in.dy, DType::f32);
      const LinearResults gpu = run_linear(
          on_gpu(in.x), on_gpu(in.w), bias ? on_gpu(in.b) : Tensor(), on_gpu(in.dy), DType::f32);
      expect_results_close(gpu, cpu, kTol);
    }
  }
}

TEST(CudaLinear, OutputsAreOverwritten) {
  RUCHE_REQUIRE_CUDA();
  // Garbage (NaN) in the outputs must not leak in: cuBLAS runs with beta = 0, db is written whole.
  const LinearShape s{6, 10, 5};
  const LinearInputs in = random_inputs(s, true);
  const LinearResults cpu = run_linear(in.x, in.w, in.b, in.dy, DType::f32);
  const Device gpu = Device::cuda(0);
  Tensor y = Tensor::empty({s.n, s.out}, DType::f32, gpu),
         dx = Tensor::empty(in.x.shape(), DType::f32, gpu);
  Tensor dw = Tensor::empty(in.w.shape(), DType::f32, gpu),
         db = Tensor::empty(in.b.shape(), DType::f32, gpu);
  for (Tensor* t : {&y, &dx, &dw, &db}) t->fill(std::nanf(""));
  ops::linear_forward(on_gpu(in.x), on_gpu(in.w), on_gpu(in.b), y);
  ops::linear_backward_data(on_gpu(in.dy), on_gpu(in.w), dx);
  ops::linear_backward_weights(on_gpu(in.x), on_gpu(in.dy), dw, db);
  expect_results_close({y, dx, dw, db}, cpu, kTol);
}

TEST(CudaLinear, Tf32IsCloseToCpu) {
  RUCHE_REQUIRE_CUDA();
  const PrecisionScope tf32(ops::Precision::tf32);
  // TF32 rounds both operands of every product to 10 mantissa bits (unit roundoff 2^-11, ~5e-4);
  // the sums of products of random signs stay within ~1e-3 norm-relative: 5e-3 leaves room and
  // still catches any wrong index or transpose (errors of order 1).
  for (const auto& s : kShapes) {
    SCOPED_TRACE(name_of(s, true));
    const LinearInputs in = random_inputs(s, true);
    const LinearResults cpu = run_linear(in.x, in.w, in.b, in.dy, DType::f32);
    const LinearResults gpu =
        run_linear(on_gpu(in.x), on_gpu(in.w), on_gpu(in.b), on_gpu(in.dy), DType::f32);
    expect_results_close(gpu, cpu, 5e-3);
  }
}

TEST(CudaLinear, HalfInputsMatchCpuOnTheRoundedValues) {
  RUCHE_REQUIRE_CUDA();
  for (DType dtype : {DType::bf16, DType::f16}) {
    for (const auto& s : kShapes) {
      for (bool bias : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + name_of(s, bias));
        const LinearInputs in = random_inputs(s, bias);
        const Tensor x = narrowed(in.x, dtype), w = narrowed(in.w, dtype),
                     dy = narrowed(in.dy, dtype);
        const Tensor b = bias ? narrowed(in.b, dtype) : Tensor();
        // The CPU computes on exactly the values the GPU sees.
        const LinearResults cpu = run_linear(widened(x), widened(w), bias ? widened(b) : Tensor(),
                                             widened(dy), DType::f32);
        // f32 outputs: products of 8- or 11-bit mantissas are exact in f32, so only the
        // accumulation order differs (tensor cores add in their own order): 1e-4.
        expect_results_close(
            run_linear(on_gpu(x), on_gpu(w), bias ? on_gpu(b) : Tensor(), on_gpu(dy), DType::f32),
            cpu, 1e-4);
        // Outputs in the inputs' dtype: one rounding of the product and one of the bias add,
        // each at most 2^-8 (bf16, 8-bit significand) or 2^-11 (f16, 11 bits) relative, so at
        // most 7.8e-3 and 9.8e-4 together: 1e-2 and 2e-3.
        const double tol = dtype == DType::bf16 ? 1e-2 : 2e-3;
        expect_results_close(
            run_linear(on_gpu(x), on_gpu(w), bias ? on_gpu(b) : Tensor(), on_gpu(dy), dtype), cpu,
            tol);
      }
    }
  }
}

TEST(CudaLinear, F32BiasWithHalfInputs) {
  RUCHE_REQUIRE_CUDA();
  // An fp32 bias (master weights) next to bf16 x and w, f32 output.
  const LinearShape s{9, 31, 11};
  const LinearInputs in = random_inputs(s, true);
  const Tensor x = narrowed(in.x, DType::bf16), w = narrowed(in.w, DType::bf16);
  Tensor y_cpu = Tensor::empty({s.n, s.out});
  ops::linear_forward(widened(x), widened(w), in.b, y_cpu);
  Tensor y = Tensor::empty({s.n, s.out}, DType::f32, Device::cuda(0));
  ops::linear_forward(on_gpu(x), on_gpu(w), on_gpu(in.b), y);
  EXPECT_TENSORS_CLOSE(on_cpu(y), y_cpu, 1e-4);
}

TEST(CudaLinear, ResultsAreDeterministic) {
  RUCHE_REQUIRE_CUDA();
  const LinearShape s{256, 512, 129};
  const LinearInputs in = random_inputs(s, true);
  const LinearResults a =
      run_linear(on_gpu(in.x), on_gpu(in.w), on_gpu(in.b), on_gpu(in.dy), DType::f32);
  const LinearResults b =
      run_linear(on_gpu(in.x), on_gpu(in.w), on_gpu(in.b), on_gpu(in.dy), DType::f32);
  EXPECT_EQ(a.y.to_vector<float>(), b.y.to_vector<float>());
  EXPECT_EQ(a.dw.to_vector<float>(), b.dw.to_vector<float>());
  EXPECT_EQ(a.db.to_vector<float>(), b.db.to_vector<float>());
}

TEST(CudaLinear, BadArgumentsAreClearErrors) {
  RUCHE_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  Tensor x = Tensor::zeros({4, 5}, DType::f32, gpu);
  Tensor w = Tensor::zeros({3, 5}, DType::f32, gpu);
  Tensor b = Tensor::zeros({3}, DType::f32, gpu);
  Tensor y = Tensor::zeros({4, 3}, DType::f32, gpu);
  Tensor w6 = Tensor::zeros({3, 6}, DType::f32, gpu);
  expect_error([&] { ops::linear_forward(x, w6, b, y); },
               {"linear_forward", "5 features", "expects 6"});
  Tensor y44 = Tensor::zeros({4, 4}, DType::f32, gpu);
  expect_error([&] { ops::linear_forward(x, w, b, y44); }, {"linear_forward", "y must be [4, 3]"});
  Tensor b4 = Tensor::zeros({4}, DType::f32, gpu);
  expect_error([&] { ops::linear_forward(x, w, b4, y); }, {"linear_forward", "b must be [3]"});
  Tensor x_bf16 = Tensor::zeros({4, 5}, DType::bf16, gpu);
  expect_error([&] { ops::linear_forward(x_bf16, w, b, y); }, {"linear_forward", "one dtype"});
  Tensor y_bf16 = Tensor::zeros({4, 3}, DType::bf16, gpu);
  expect_error([&] { ops::linear_forward(x, w, b, y_bf16); }, {"linear_forward", "y", "f32"});
  Tensor x_i32 = Tensor::zeros({4, 5}, DType::i32, gpu);
  expect_error([&] { ops::linear_forward(x_i32, w, b, y); }, {"linear_forward", "x", "bf16"});
  Tensor host = Tensor::zeros({4, 5});
  expect_error([&] { ops::linear_forward(host, w, b, y); },
               {"linear_forward", "different devices"});
  Tensor x3 = Tensor::zeros({4, 5, 1}, DType::f32, gpu);
  expect_error([&] { ops::linear_forward(x3, w, b, y); }, {"linear_forward", "[N, in]"});

  Tensor dx = Tensor::zeros({4, 5}, DType::f32, gpu);
  Tensor dy_bad = Tensor::zeros({4, 2}, DType::f32, gpu);
  expect_error([&] { ops::linear_backward_data(dy_bad, w, dx); },
               {"linear_backward_data", "dy must be [4, 3]"});
  Tensor dw = Tensor::zeros({3, 5}, DType::f32, gpu);
  Tensor db_f16 = Tensor::zeros({3}, DType::f16, gpu);
  expect_error([&] { ops::linear_backward_weights(x, y, dw, db_f16); },
               {"linear_backward_weights", "db", "dw's dtype"});
  Tensor strided = Tensor::zeros({5, 4}, DType::f32, gpu).transpose(0, 1);
  expect_error([&] { ops::linear_backward_weights(strided, y, dw, b); },
               {"linear_backward_weights", "x", "not contiguous"});
}

}  // namespace
}  // namespace ruche
