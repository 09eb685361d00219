// Comparing tensors the way docs/ARCHITECTURE.md's Tests section asks: norm-relative error, never
// element-wise relative error on values near zero.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "engine/tensor/tensor.h"

namespace ruche::testing {

// ||a - b|| / ||b|| over all elements (f32), computed in double; 0 when both are zero.
inline double norm_relative_error(const Tensor& a, const Tensor& b) {
  check_same_shape(a, b, "norm_relative_error");
  const auto va = a.to_vector<float>();
  const auto vb = b.to_vector<float>();
  double diff = 0, ref = 0;
  for (std::size_t i = 0; i < va.size(); ++i) {
    const double d = static_cast<double>(va[i]) - vb[i];
    diff += d * d;
    ref += static_cast<double>(vb[i]) * vb[i];
  }
  if (ref == 0) return std::sqrt(diff);
  return std::sqrt(diff / ref);
}

inline ::testing::AssertionResult tensors_close(const char* a_expr, const char* b_expr, const char*,
                                                const Tensor& a, const Tensor& b,
                                                double tolerance) {
  if (!(a.shape() == b.shape())) {
    return ::testing::AssertionFailure() << a_expr << " has shape " << a.shape().str() << ", "
                                         << b_expr << " has " << b.shape().str();
  }
  const double err = norm_relative_error(a, b);
  if (err <= tolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "norm-relative error of " << a_expr << " against "
                                       << b_expr << " is " << err << " > " << tolerance;
}

// Every element of two cpu tensors of T equal (+0 and -0 alike); reports the count of mismatches
// and the first.
template <typename T = float>
void expect_same_elements(const Tensor& actual, const Tensor& expected) {
  ASSERT_TRUE(actual.shape() == expected.shape())
      << actual.shape().str() << " against " << expected.shape().str();
  const auto a = actual.to_vector<T>();
  const auto e = expected.to_vector<T>();
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != e[i] && mismatches++ == 0) first = i;
  }
  if (mismatches == 0) return;
  ADD_FAILURE() << mismatches << " of " << a.size() << " elements differ, the first at " << first
                << ": " << +a[first] << " against " << +e[first];
}

}  // namespace ruche::testing

// EXPECT_TENSORS_CLOSE(actual, expected, tol): norm-relative error <= tol.
#define EXPECT_TENSORS_CLOSE(actual, expected, tol) \
  EXPECT_PRED_FORMAT3(::ruche::testing::tensors_close, actual, expected, tol)
