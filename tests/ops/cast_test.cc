// cast on the CPU: f32 <-> bf16 <-> f16 against the scalar conversions of engine/tensor/half.h
// (round to nearest even, subnormals, overflow, inf, NaN), exact round trips of every 16-bit
// pattern, the threaded path, errors. No PyTorch reference: half.h is checked against numpy's
// conversions in tests/mpi/half_test.cc.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "engine/tensor/half.h"
#include "ops/ops.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

Tensor bits_tensor(const std::vector<std::uint16_t>& bits, DType dtype) {
  Tensor t = Tensor::empty({static_cast<std::int64_t>(bits.size())}, dtype);
  std::copy(bits.begin(), bits.end(), static_cast<std::uint16_t*>(t.raw_data()));
  return t;
}

std::vector<std::uint16_t> bits_of(const Tensor& t) {
  const auto* p = static_cast<const std::uint16_t*>(t.raw_data());
  return std::vector<std::uint16_t>(p, p + t.numel());
}

std::uint16_t narrow_scalar(DType to, float f) {
  return to == DType::bf16 ? half::bf16_from_f32(f) : half::f16_from_f32(f);
}

float widen_scalar(DType from, std::uint16_t h) {
  return from == DType::bf16 ? half::bf16_to_f32(h) : half::f16_to_f32(h);
}

// Values that exercise the rounding: ties both ways, subnormals of both formats, the largest
// finite values and just past them, infinities, zeros of both signs, a NaN.
std::vector<float> edge_values() {
  std::vector<float> v = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.0f,
                          1.0f + 0x1p-11f,
                          1.0f + 3 * 0x1p-11f,
                          1.0f + 0x1p-8f,
                          1.0f + 3 * 0x1p-8f,
                          65504.0f,
                          65519.0f,
                          65520.0f,
                          -65520.0f,
                          0x1p-24f,
                          0x1p-25f,
                          0x1.8p-25f,
                          0x1p-14f,
                          0x1p-126f,
                          0x1p-149f,
                          std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(),
                          3.14159265f,
                          -2.71828f,
                          1e-3f};
  const Tensor random = testing::random_tensor({1000}, 3, -100.0f, 100.0f);
  for (float f : random.to_vector<float>()) v.push_back(f);
  return v;
}

TEST(Cast, NarrowsAsTheScalarConversions) {
  const std::vector<float> values = edge_values();
  const Tensor x = Tensor::from_vector(values, {static_cast<std::int64_t>(values.size())});
  for (DType to : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(std::string(dtype_name(to)));
    Tensor y = Tensor::empty(x.shape(), to);
    ops::cast(x, y);
    const auto got = bits_of(y);
    for (std::size_t i = 0; i < values.size(); ++i) {
      EXPECT_EQ(got[i], narrow_scalar(to, values[i])) << "value " << values[i];
    }
  }
}

// Widening is exact and narrowing it back gives the same bits, for every non-NaN pattern.
TEST(Cast, EveryPatternRoundTrips) {
  std::vector<std::uint16_t> all(1 << 16);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint16_t>(i);
  for (DType half_type : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(std::string(dtype_name(half_type)));
    const Tensor h = bits_tensor(all, half_type);
    Tensor f = Tensor::empty(h.shape());
    ops::cast(h, f);
    Tensor back = Tensor::empty(h.shape(), half_type);
    ops::cast(f, back);
    const auto widened = f.to_vector<float>();
    const auto returned = bits_of(back);
    int checked = 0;
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (std::isnan(widened[i])) continue;
      ASSERT_EQ(std::bit_cast<std::uint32_t>(widened[i]),
                std::bit_cast<std::uint32_t>(widen_scalar(half_type, all[i])))
          << "pattern " << i;
      ASSERT_EQ(returned[i], all[i]) << "pattern " << i;
      ++checked;
    }
    EXPECT_GT(checked, 63000);
  }
}

// bf16 <-> f16 rounds once, through the exact f32 value.
TEST(Cast, BetweenSixteenBitTypesGoesThroughF32) {
  const std::vector<float> values = edge_values();
  for (auto [from, to] : {std::pair{DType::bf16, DType::f16}, std::pair{DType::f16, DType::bf16}}) {
    std::vector<std::uint16_t> in;
    in.reserve(values.size());
    for (float v : values) in.push_back(narrow_scalar(from, v));
    const Tensor x = bits_tensor(in, from);
    Tensor y = Tensor::empty(x.shape(), to);
    ops::cast(x, y);
    const auto got = bits_of(y);
    for (std::size_t i = 0; i < in.size(); ++i) {
      const float exact = widen_scalar(from, in[i]);
      if (std::isnan(exact)) {
        EXPECT_TRUE(std::isnan(widen_scalar(to, got[i])));
        continue;
      }
      EXPECT_EQ(got[i], narrow_scalar(to, exact)) << "value " << exact;
    }
  }
}

// Above the threading threshold, blocks of the loop agree with one pass of the scalar code.
TEST(Cast, LargeTensorsOnTheTeam) {
  const std::int64_t n = (1 << 17) + 13;
  const Tensor x = testing::random_tensor({n}, 5, -3.0f, 3.0f);
  const auto values = x.to_vector<float>();
  for (DType to : {DType::bf16, DType::f16}) {
    Tensor y = Tensor::empty({n}, to);
    ops::cast(x, y);
    const auto got = bits_of(y);
    std::int64_t mismatches = 0;
    for (std::int64_t i = 0; i < n; ++i) mismatches += got[i] != narrow_scalar(to, values[i]);
    EXPECT_EQ(mismatches, 0) << dtype_name(to);
    Tensor back = Tensor::empty({n});
    ops::cast(y, back);
    const auto widened = back.to_vector<float>();
    for (std::int64_t i = 0; i < n; i += 977) {
      EXPECT_EQ(widened[i], widen_scalar(to, got[i]));
    }
  }
}

TEST(Cast, SameTypeCopies) {
  const Tensor x = testing::random_tensor({7, 3}, 1);
  Tensor y = Tensor::empty({7, 3});
  ops::cast(x, y);
  EXPECT_EQ(y.to_vector<float>(), x.to_vector<float>());
}

TEST(Cast, ClearErrors) {
  const Tensor x = Tensor::zeros({2, 3});
  Tensor wrong_shape = Tensor::empty({3, 2}, DType::bf16);
  EXPECT_EQ(testing::error_of([&] { ops::cast(x, wrong_shape); }),
            "cast: y has shape [3, 2] but x has [2, 3]");
  Tensor ints = Tensor::empty({2, 3}, DType::i32);
  EXPECT_NE(testing::error_of([&] { ops::cast(x, ints); }).find("cast: y must be f32, bf16 or f16"),
            std::string::npos);
  const Tensor strided = Tensor::zeros({3, 2}).transpose(0, 1);
  Tensor out = Tensor::empty({2, 3}, DType::f16);
  EXPECT_NE(testing::error_of([&] { ops::cast(strided, out); }).find("is not contiguous"),
            std::string::npos);
}

}  // namespace
}  // namespace ruche
