// Argument checks shared by the plain-loop CPU ops: each error names the op and the argument.
#pragma once

#include <cstdint>

#include "engine/tensor/tensor.h"

namespace ruche::ops::cpu {

// Loops shorter than this run on one thread: below it, waking the team costs more than it saves.
constexpr std::int64_t kParallelMin = 1 << 15;

// t is defined, contiguous and holds `dtype`.
inline void check_dense(const char* op, const char* arg, const Tensor& t,
                        DType dtype = DType::f32) {
  RUCHE_REQUIRE(t.defined()) << op << ": " << arg << " is not given";
  RUCHE_REQUIRE(t.dtype() == dtype)
      << op << ": " << arg << " must be " << dtype_name(dtype) << ", got " << t.str();
  RUCHE_REQUIRE(t.is_contiguous()) << op << ": " << arg << " " << t.str() << " is not contiguous";
}

// t has the same shape as `ref` (named ref_arg).
inline void check_same_shape_as(const char* op, const char* arg, const Tensor& t,
                                const char* ref_arg, const Tensor& ref) {
  RUCHE_REQUIRE(t.shape() == ref.shape()) << op << ": " << arg << " has shape " << t.shape().str()
                                          << " but " << ref_arg << " has " << ref.shape().str();
}

// t is a one-element tensor (a loss).
inline void check_scalar(const char* op, const char* arg, const Tensor& t) {
  check_dense(op, arg, t);
  RUCHE_REQUIRE(t.numel() == 1) << op << ": " << arg << " must hold one element, got shape "
                                << t.shape().str();
}

}  // namespace ruche::ops::cpu
