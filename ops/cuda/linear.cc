// Fully connected layers on cuBLAS: y = x w^T + b, with x [N, in], w [out, in], b [out], as
// ops/cpu/linear.cc. cuBLAS is column-major and our tensors row-major: a row-major [r, c] matrix
// is the column-major [c, r] one, its transpose, so each product is computed transposed
// (y^T = w x^T and so on) with no copy.
//
// Types: the two inputs of a product share one dtype, f32, bf16 or f16; the output is f32 or that
// dtype; cuBLAS accumulates in f32 either way. fp32 inputs are strict (no TF32) unless
// gpu_math().precision allows TF32. The bias add and db are our kernels (linear_bias.cu).
#include <cublas_api.h>

#include <cstdint>
#include <limits>

#include "ops/cuda/cublas_api.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/handles.h"
#include "ops/cuda/kernel_util.h"
#include "ops/cuda/linear_bias.h"
#include "ops/op_checks.h"

namespace ruche::ops::gpu {
namespace {

bool is_float_dtype(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

cudaDataType cuda_type_of(DType t) {
  switch (t) {
    case DType::f32:
      return CUDA_R_32F;
    case DType::bf16:
      return CUDA_R_16BF;
    case DType::f16:
      return CUDA_R_16F;
    default:
      break;
  }
  RUCHE_FAIL() << "linear: no cuBLAS type for " << dtype_name(t);
}

// `t` is defined, on a CUDA device, contiguous and f32, bf16 or f16.
void check_float_arg(const Tensor& t, const char* op, const char* name) {
  RUCHE_REQUIRE(t.defined()) << op << ": " << name << " is not given";
  RUCHE_REQUIRE(t.device().is_cuda())
      << op << ": " << name << " must be on a CUDA device, got " << t.str();
  RUCHE_REQUIRE(is_float_dtype(t.dtype()))
      << op << ": " << name << " must be f32, bf16 or f16, got " << t.str();
  RUCHE_REQUIRE(t.is_contiguous()) << op << ": " << name << " " << t.str() << " is not contiguous";
}

// `t` has dtype `dtype` or f32 (the accumulation type cuBLAS may write instead).
void check_output_dtype(const Tensor& t, DType dtype, const char* op, const char* name,
                        const char* input_names) {
  if (dtype == DType::f32) {
    RUCHE_REQUIRE(t.dtype() == DType::f32)
        << op << ": " << name << " must be f32 (as " << input_names << "), got " << t.str();
  }
  RUCHE_REQUIRE(t.dtype() == dtype || t.dtype() == DType::f32)
      << op << ": " << name << " must be f32 or " << dtype_name(dtype) << " (the dtype of "
      << input_names << "), got " << t.str();
}

// The device's per-tensor check; ops/op_checks.h does the shapes with the CPU op's messages.
constexpr TensorCheck kCheck = [](const char* op, const char* name, const Tensor& t,
                                  const Tensor&) { check_float_arg(t, op, name); };

// Checks x [N, in], w [out, in], y [N, out] (names as the op calls them) and an optional b [out],
// and that the matrices fit cuBLAS's int dimensions.
void check_linear_args(const char* op, const Tensor& x, const char* x_name, const Tensor& w,
                       const char* w_name, const Tensor& y, const char* y_name, const Tensor& b,
                       const char* b_name) {
  ops::check_linear_args(op, x, x_name, w, w_name, y, y_name, b, b_name, kCheck);
  constexpr std::int64_t kMaxDim = std::numeric_limits<int>::max();
  RUCHE_REQUIRE(x.size(0) <= kMaxDim && x.size(1) <= kMaxDim && w.size(0) <= kMaxDim)
      << op << ": dimensions of " << x_name << " " << x.shape().str() << " and " << w_name << " "
      << w.shape().str() << " exceed cuBLAS's int range";
}

// The two inputs of a product share a dtype.
void check_same_input_dtype(const Tensor& a, const char* a_name, const Tensor& b,
                            const char* b_name, const char* op) {
  RUCHE_REQUIRE(a.dtype() == b.dtype()) << op << ": " << a_name << " " << a.str() << " and "
                                        << b_name << " " << b.str() << " must share one dtype";
}

// f32 accumulation always; for f32 inputs, strict f32 (pedantic: no TF32, whatever the handle's
// math mode) unless --precision allows TF32, which is then asked for explicitly.
cublasComputeType_t compute_type_for(DType inputs) {
  if (inputs != DType::f32) return CUBLAS_COMPUTE_32F;
  return tf32_allowed() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_PEDANTIC;
}

// Column-major C[m, n] = op(A)[m, k] op(B)[k, n], overwriting C (beta = 0). A and B share a
// dtype. k = 0 (an empty sum) writes zeros: cuBLAS would reject the leading dimension 0.
void gemm(cublasOperation_t op_a, cublasOperation_t op_b, std::int64_t m, std::int64_t n,
          std::int64_t k, const Tensor& a, std::int64_t lda, const Tensor& b, std::int64_t ldb,
          Tensor& c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    CUDA_CHECK(cudaMemsetAsync(c.raw_data(), 0, c.nbytes(), current_stream()));
    return;
  }
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_CHECK(cublas().gemm_ex(
      cublas_handle(), op_a, op_b, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
      &alpha, a.raw_data(), cuda_type_of(a.dtype()), static_cast<int>(lda), b.raw_data(),
      cuda_type_of(b.dtype()), static_cast<int>(ldb), &beta, c.raw_data(), cuda_type_of(c.dtype()),
      static_cast<int>(ldc), compute_type_for(a.dtype()), CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  constexpr const char* op = "linear_forward";
  check_linear_args(op, x, "x", w, "w", y, "y", b, "b");
  check_same_input_dtype(x, "x", w, "w", op);
  check_output_dtype(y, x.dtype(), op, "y", "x and w");
  if (b.defined()) check_output_dtype(b, x.dtype(), op, "b", "x and w");
  const std::int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  use_device_of(x);
  // y^T [out, N] = w [out, in] x^T [in, N]: w's memory is column-major [in, out], read transposed.
  gemm(CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, w, in, x, in, y, out);
  if (b.defined()) add_bias_to_rows(b, y, current_stream());
}

void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) {
  constexpr const char* op = "linear_backward_data";
  check_linear_args(op, dx, "dx", w, "w", dy, "dy", Tensor(), "");
  check_same_input_dtype(dy, "dy", w, "w", op);
  check_output_dtype(dx, dy.dtype(), op, "dx", "dy and w");
  const std::int64_t n = dx.size(0), in = dx.size(1), out = w.size(0);
  use_device_of(dy);
  // dx^T [in, N] = w^T [in, out] dy^T [out, N]: both memories are already those column-major.
  gemm(CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, w, in, dy, out, dx, in);
}

void linear_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db) {
  constexpr const char* op = "linear_backward_weights";
  check_linear_args(op, x, "x", dw, "dw", dy, "dy", db, "db");
  check_same_input_dtype(x, "x", dy, "dy", op);
  check_output_dtype(dw, x.dtype(), op, "dw", "x and dy");
  if (db.defined()) {
    RUCHE_REQUIRE(db.dtype() == dw.dtype())
        << op << ": db " << db.str() << " must have dw's dtype " << dtype_name(dw.dtype());
  }
  const std::int64_t n = x.size(0), in = x.size(1), out = dw.size(0);
  use_device_of(x);
  // dw^T [in, out] = x^T [in, N] dy [N, out]: dy's memory is column-major [out, N], read
  // transposed. Overwrites dw, as the CPU op (N = 0 gives zeros).
  gemm(CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, x, in, dy, out, dw, in);
  if (db.defined()) sum_rows_into(dy, db, current_stream());
}

}  // namespace ruche::ops::gpu
