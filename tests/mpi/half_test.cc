// The 16-bit conversions of gradient compression, checked over every 16-bit pattern.
#include "engine/tensor/half.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace ruche {
namespace {

using half::bf16_from_f32;
using half::bf16_to_f32;
using half::f16_from_f32;
using half::f16_to_f32;

TEST(Half, KnownValues) {
  EXPECT_EQ(f16_from_f32(1.0f), 0x3C00);
  EXPECT_EQ(f16_from_f32(-2.0f), 0xC000);
  EXPECT_EQ(f16_from_f32(65504.0f), 0x7BFF);  // the largest f16
  EXPECT_EQ(f16_from_f32(65519.0f), 0x7BFF);  // below halfway to 65536
  EXPECT_EQ(f16_from_f32(65520.0f), 0x7C00);  // halfway: ties to even, which is inf
  EXPECT_EQ(f16_from_f32(1e9f), 0x7C00);
  EXPECT_EQ(f16_from_f32(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(f16_from_f32(0x1p-24f), 0x0001);      // the smallest subnormal
  EXPECT_EQ(f16_from_f32(0x1p-25f), 0x0000);      // halfway to it: ties to even (zero)
  EXPECT_EQ(f16_from_f32(0x1.8p-25f), 0x0001);    // past halfway
  EXPECT_EQ(f16_from_f32(0x1.ffcp-15f), 0x0400);  // rounds up to the smallest normal
  EXPECT_EQ(f16_from_f32(-0.0f), 0x8000);
  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);
  EXPECT_TRUE(std::isnan(f16_to_f32(f16_from_f32(std::nanf("")))));
  EXPECT_EQ(bf16_from_f32(1.0f), 0x3F80);
  EXPECT_EQ(bf16_from_f32(0x1.01p0f), 0x3F80);  // halfway: ties to even (down)
  EXPECT_EQ(bf16_from_f32(0x1.03p0f), 0x3F82);  // halfway: ties to even (up)
  EXPECT_EQ(bf16_from_f32(std::numeric_limits<float>::max()), 0x7F80);  // rounds to inf
  EXPECT_TRUE(std::isnan(bf16_to_f32(bf16_from_f32(std::nanf("")))));
}

// Every finite value survives the round trip; every midpoint between neighbours rounds to the
// one with the even last bit, and just off the midpoint to the nearer one.
template <typename From, typename To>
void check_all_patterns(From from_f32, To to_f32, std::uint16_t inf) {
  for (std::uint32_t h = 0; h < inf; ++h) {  // the positive finite values, ascending
    const auto bits = static_cast<std::uint16_t>(h);
    const float x = to_f32(bits);
    ASSERT_EQ(from_f32(x), bits) << "round trip of " << x;
    ASSERT_EQ(from_f32(-x), bits | 0x8000) << "round trip of " << -x;
    if (h + 1 == inf) break;
    const float next = to_f32(static_cast<std::uint16_t>(h + 1));
    const float mid = x + (next - x) / 2;  // exact: f32 has the bits to spare
    const auto even = static_cast<std::uint16_t>((h & 1) ? h + 1 : h);
    ASSERT_EQ(from_f32(mid), even) << "midpoint " << mid << " of " << x << " and " << next;
    ASSERT_EQ(from_f32(std::nextafter(mid, 0.0f)), bits) << "just below the midpoint " << mid;
    ASSERT_EQ(from_f32(std::nextafter(mid, next)), h + 1) << "just above the midpoint " << mid;
  }
}

TEST(Half, F16RoundsToNearestEvenEverywhere) {
  check_all_patterns(f16_from_f32, f16_to_f32, 0x7C00);
}
TEST(Half, Bf16RoundsToNearestEvenEverywhere) {
  check_all_patterns(bf16_from_f32, bf16_to_f32, 0x7F80);
}

// The bulk loops (F16C where the CPU has it) give the scalar functions' bits on every 16-bit
// pattern, every midpoint and its neighbours, and for sums; NaN only as NaN.
TEST(Half, BulkLoopsAgreeWithTheScalarFunctions) {
  for (DType wire : {DType::f16, DType::bf16}) {
    auto from = wire == DType::f16 ? f16_from_f32 : bf16_from_f32;
    auto to = wire == DType::f16 ? f16_to_f32 : bf16_to_f32;
    std::vector<std::uint16_t> all(65536);
    for (std::uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<std::uint16_t>(h);
    std::vector<float> wide(all.size());
    half::widen(wire, all.data(), wide.data(), static_cast<std::int64_t>(all.size()));
    std::vector<float> probes;
    for (std::uint32_t h = 0; h < 65536; ++h) {
      const float x = to(all[h]), y = to(static_cast<std::uint16_t>(h + 1));
      if (std::isnan(x)) {
        ASSERT_TRUE(std::isnan(wide[h]));
        continue;
      }
      ASSERT_EQ(std::bit_cast<std::uint32_t>(wide[h]), std::bit_cast<std::uint32_t>(x)) << h;
      probes.push_back(x);
      if (std::isfinite(x) && std::isfinite(y) && ((h + 1) & 0x7FFF) != 0) {
        const float mid = x + (y - x) / 2;
        probes.insert(probes.end(), {mid, std::nextafter(mid, x), std::nextafter(mid, y)});
      }
    }
    probes.push_back(std::nanf(""));
    std::vector<std::uint16_t> narrowed(probes.size());
    const auto n = static_cast<std::int64_t>(probes.size());
    half::narrow(wire, probes.data(), narrowed.data(), n, 1.0f);
    for (std::size_t i = 0; i < probes.size(); ++i) {
      if (std::isnan(probes[i])) {
        ASSERT_TRUE(std::isnan(to(narrowed[i])));
      } else {
        ASSERT_EQ(narrowed[i], from(probes[i])) << dtype_name(wire) << " " << probes[i];
      }
    }
    // Sums: every pattern plus a few fixed ones, against widen-add-round.
    for (float b : {1.0f, -0.5f, 3e-5f, 60000.0f}) {
      std::vector<std::uint16_t> sum(all.size(), from(b));
      half::add(wire, all.data(), sum.data(), static_cast<std::int64_t>(all.size()));
      for (std::uint32_t h = 0; h < 65536; ++h) {
        const float expected = to(from(to(all[h]) + to(from(b))));
        if (std::isnan(expected)) {
          ASSERT_TRUE(std::isnan(to(sum[h])));
        } else {
          ASSERT_EQ(sum[h], from(expected)) << dtype_name(wire) << " " << to(all[h]) << " + " << b;
        }
      }
    }
  }
}

TEST(Half, SumIsRoundedOnceAndSymmetric) {
  std::uint16_t a[2] = {f16_from_f32(1.0f), f16_from_f32(2048.0f)};
  std::uint16_t b[2] = {f16_from_f32(0x1p-11f), f16_from_f32(1.0f)};
  half::add(DType::f16, a, b, 2);
  EXPECT_EQ(f16_to_f32(b[0]), 1.0f);     // 1 + 2^-11 is a tie: to even
  EXPECT_EQ(f16_to_f32(b[1]), 2048.0f);  // 2049 is a tie between 2048 and 2050: to even
  std::uint16_t c[1] = {bf16_from_f32(3.0f)}, d[1] = {bf16_from_f32(5.0f)};
  half::add(DType::bf16, c, d, 1);
  EXPECT_EQ(bf16_to_f32(d[0]), 8.0f);
}

}  // namespace
}  // namespace ruche
