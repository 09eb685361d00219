// 16-bit floats on the host, for compressed gradients (comm) and ops::cast: f16 (IEEE binary16)
// and bf16 (the top half of an f32). f32 -> 16 bits rounds to nearest, ties to even, as torch's
// .half() and .bfloat16() do; overflow gives inf, NaN stays NaN. Widening is exact.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#include "engine/tensor/dtype.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace ruche::half {

// After Maratyszcza's FP16 library: the FPU does the rounding. Scaling by 2^112 * 2^-110 sends what
// overflows f16 to inf (and keeps the rest exact); adding 2^(e+1) with e the value's exponent, at
// least that of f16's smallest normal, leaves exactly f16's mantissa bits in the sum's low bits,
// rounded to nearest even, subnormals included. NaN becomes the quiet NaN 0x7E00 with its sign.
inline std::uint16_t f16_from_f32(float f) {
  const std::uint32_t w = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t shl1_w = w + w;  // without the sign
  const std::uint32_t sign = w & 0x80000000u;
  std::uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  float base = (std::fabs(f) * 0x1p+112f) * 0x1p-110f;
  base = std::bit_cast<float>((bias >> 1) + 0x07800000u) + base;
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(base);
  const std::uint32_t nonsign = ((bits >> 13) & 0x7C00u) + (bits & 0x0FFFu);
  return static_cast<std::uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

// Normal values: shift the bits into place and rescale the exponent by 2^-112 in one multiply;
// subnormals: place the mantissa under the exponent of 0.5 and subtract 0.5.
inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t w = static_cast<std::uint32_t>(h) << 16;
  const std::uint32_t sign = w & 0x80000000u;
  const std::uint32_t two_w = w + w;
  const float normal = std::bit_cast<float>((two_w >> 4) + (0xE0u << 23)) * 0x1p-112f;
  const float subnormal = std::bit_cast<float>((two_w >> 17) | (126u << 23)) - 0.5f;
  return std::bit_cast<float>(sign | (two_w < (1u << 27) ? std::bit_cast<std::uint32_t>(subnormal)
                                                         : std::bit_cast<std::uint32_t>(normal)));
}

inline std::uint16_t bf16_from_f32(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t rounded =
      (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;  // ties to even; may carry into inf
  const std::uint32_t quiet_nan = (x >> 16) | 0x40u;
  return static_cast<std::uint16_t>((x & 0x7FFFFFFFu) > 0x7F800000u ? quiet_nan : rounded);
}

inline float bf16_to_f32(std::uint16_t h) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

// The bulk f16 loops use the F16C instructions where the CPU has them (GCC does not vectorize the
// scalar ones: -ftrapping-math keeps their selects as branches); the same bits but for NaN
// payloads (tests/mpi/half_test.cc).
#if defined(__x86_64__) && defined(__GNUC__)
namespace detail {

// F16C from CPUID leaf 1 (ECX bit 29): clang 14 knows no "f16c" for __builtin_cpu_supports.
inline bool has_f16c() {
  static const bool yes = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __builtin_cpu_supports("avx") && __get_cpuid(1, &eax, &ebx, &ecx, &edx) &&
           (ecx & bit_F16C) != 0;
  }();
  return yes;
}

__attribute__((target("avx,f16c"))) inline std::int64_t narrow_f16c(const float* src,
                                                                    std::uint16_t* dst,
                                                                    std::int64_t n, float scale) {
  const __m256 s = _mm256_set1_ps(scale);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(src + i), s);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  return i;
}

__attribute__((target("avx,f16c"))) inline std::int64_t widen_f16c(const std::uint16_t* src,
                                                                   float* dst, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  return i;
}

__attribute__((target("avx,f16c"))) inline std::int64_t add_f16c(const std::uint16_t* in,
                                                                 std::uint16_t* inout,
                                                                 std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
    const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(inout + i)));
    _mm_storeu_si128(
        reinterpret_cast<__m128i*>(inout + i),
        _mm256_cvtps_ph(_mm256_add_ps(a, b), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  return i;
}

}  // namespace detail
#define RUCHE_HALF_F16C(call) (detail::has_f16c() ? detail::call : 0)
#else
#define RUCHE_HALF_F16C(call) 0
#endif

// dst[i] = round(src[i] * scale) in `wire` (f16 or bf16).
inline void narrow(DType wire, const float* src, std::uint16_t* dst, std::int64_t n, float scale) {
  if (wire == DType::bf16) {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_from_f32(src[i] * scale);
  } else {
    for (std::int64_t i = RUCHE_HALF_F16C(narrow_f16c(src, dst, n, scale)); i < n; ++i) {
      dst[i] = f16_from_f32(src[i] * scale);
    }
  }
}

// dst[i] = src[i] widened from `wire` to f32.
inline void widen(DType wire, const std::uint16_t* src, float* dst, std::int64_t n) {
  if (wire == DType::bf16) {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
  } else {
    for (std::int64_t i = RUCHE_HALF_F16C(widen_f16c(src, dst, n)); i < n; ++i) {
      dst[i] = f16_to_f32(src[i]);
    }
  }
}

// inout[i] = round(widen(in[i]) + widen(inout[i])). f32 carries 24 >= 2p + 2 bits for both
// (p = 11, 8), so rounding twice gives the correctly rounded 16-bit sum; and it is the same bits
// whichever operand comes first, so reductions agree on every rank.
inline void add(DType wire, const std::uint16_t* in, std::uint16_t* inout, std::int64_t n) {
  if (wire == DType::bf16) {
    for (std::int64_t i = 0; i < n; ++i) {
      inout[i] = bf16_from_f32(bf16_to_f32(in[i]) + bf16_to_f32(inout[i]));
    }
  } else {
    for (std::int64_t i = RUCHE_HALF_F16C(add_f16c(in, inout, n)); i < n; ++i) {
      inout[i] = f16_from_f32(f16_to_f32(in[i]) + f16_to_f32(inout[i]));
    }
  }
}

#undef RUCHE_HALF_F16C

}  // namespace ruche::half
