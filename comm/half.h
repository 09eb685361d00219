// 16-bit floats on the host, for compressed gradients: f16 (IEEE binary16) and bf16 (the top
// half of an f32). f32 -> 16 bits rounds to nearest, ties to even, as torch's .half() and
// .bfloat16() do; overflow gives inf, NaN stays NaN. Widening is exact.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#include "engine/tensor/dtype.h"

namespace ruche::half {

inline std::uint16_t f16_from_f32(float f) {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7FFFFFFFu;
  if (x > 0x7F800000u) return sign | 0x7E00u | ((x >> 13) & 0x3FFu);  // NaN, quiet
  if (x >= 0x477FF000u) return sign | 0x7C00u;  // from halfway past 65504 (to even: inf)
  if (x >= 0x38800000u) {                       // a normal f16 (2^-14 or more)
    x -= 0x38000000u;                           // exponent bias 127 -> 15
    x += 0xFFFu + ((x >> 13) & 1u);             // ties to even; a carry bumps the exponent
    return sign | static_cast<std::uint16_t>(x >> 13);
  }
  // Subnormal or zero: adding 0.5 makes the FPU round |f| to a multiple of 2^-24 (ties to even),
  // which lands in the low bits; 2^-14 itself comes out as the smallest normal, 0x0400.
  const float shifted = std::fabs(f) + 0.5f;
  return sign | static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(shifted) - 0x3F000000u);
}

inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  const std::uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1Fu) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in f32
    const float v = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -v : v;
  }
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

inline std::uint16_t bf16_from_f32(float f) {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  x += 0x7FFFu + ((x >> 16) & 1u);  // ties to even; overflow carries into inf
  return static_cast<std::uint16_t>(x >> 16);
}

inline float bf16_to_f32(std::uint16_t h) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

// dst[i] = round(src[i] * scale) in `wire` (f16 or bf16).
inline void narrow(DType wire, const float* src, std::uint16_t* dst, std::int64_t n, float scale) {
  if (wire == DType::bf16) {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_from_f32(src[i] * scale);
  } else {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = f16_from_f32(src[i] * scale);
  }
}

// dst[i] = src[i] widened from `wire` to f32.
inline void widen(DType wire, const std::uint16_t* src, float* dst, std::int64_t n) {
  if (wire == DType::bf16) {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
  } else {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
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
    for (std::int64_t i = 0; i < n; ++i) {
      inout[i] = f16_from_f32(f16_to_f32(in[i]) + f16_to_f32(inout[i]));
    }
  }
}

}  // namespace ruche::half
