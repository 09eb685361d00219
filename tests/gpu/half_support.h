// bf16 / f16 tensors on the host for the gpu tests: a cpu f32 tensor rounded to 16 bits (to
// nearest, ties to even) and a 16-bit tensor widened back (exactly). narrowed / widened are plain
// arithmetic, kept apart from the library's own conversions so the tests of those conversions do
// not lean on what they check; the low-precision op tests below use the CPU's ops::cast instead.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/tensor/tensor.h"
#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"

namespace ruche::testing {

inline std::uint16_t bf16_bits(float v) {
  std::uint32_t x = 0;
  std::memcpy(&x, &v, sizeof x);
  return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);  // finite v only
}

inline float bf16_value(std::uint16_t h) {
  const std::uint32_t x = static_cast<std::uint32_t>(h) << 16;
  float v = 0;
  std::memcpy(&v, &x, sizeof v);
  return v;
}

// Finite v; beyond f16's range gives inf.
inline std::uint16_t f16_bits(float v) {
  const std::uint16_t sign = std::signbit(v) ? 0x8000u : 0u;
  const float a = std::fabs(v);
  if (a == 0.0f) return sign;
  int e = 0;
  std::frexp(a, &e);
  int exponent = e - 1;  // a = 1.f * 2^exponent
  if (exponent < -14) {  // subnormal: units of 2^-24 (rounding up may give the smallest normal)
    return static_cast<std::uint16_t>(
        sign | static_cast<std::uint16_t>(std::nearbyint(std::ldexp(a, 24))));
  }
  auto q = static_cast<std::uint32_t>(std::nearbyint(std::ldexp(a, 10 - exponent)));  // 1024..2048
  if (q == 2048) {
    q = 1024;
    ++exponent;
  }
  if (exponent > 15) return static_cast<std::uint16_t>(sign | 0x7C00u);
  return static_cast<std::uint16_t>(sign | ((exponent + 15) << 10) | (q - 1024));
}

inline float f16_value(std::uint16_t h) {
  const float sign = (h & 0x8000u) ? -1.0f : 1.0f;
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  if (exponent == 0x1F) return mantissa ? NAN : sign * INFINITY;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  return sign * std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
}

// A cpu f32 tensor rounded to `dtype` (bf16 or f16).
inline Tensor narrowed(const Tensor& t, DType dtype) {
  Tensor h = Tensor::empty(t.shape(), dtype);
  const float* src = t.data<float>();
  auto* dst = static_cast<std::uint16_t*>(h.raw_data());
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    dst[i] = dtype == DType::bf16 ? bf16_bits(src[i]) : f16_bits(src[i]);
  }
  return h;
}

// A cpu tensor of f32, bf16 or f16 as f32.
inline Tensor widened(const Tensor& h) {
  if (h.dtype() == DType::f32) return h;
  Tensor f = Tensor::empty(h.shape());
  const auto* src = static_cast<const std::uint16_t*>(h.raw_data());
  float* dst = f.data<float>();
  for (std::int64_t i = 0; i < h.numel(); ++i) {
    dst[i] = h.dtype() == DType::bf16 ? bf16_value(src[i]) : f16_value(src[i]);
  }
  return f;
}

// A cpu tensor (f32, bf16 or f16) in `dtype`, by the CPU's cast (round to nearest even).
inline Tensor cast_to(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = Tensor::empty(t.shape(), dtype);
  ops::cast(t, out);
  return out;
}

// One input of a low-precision case: an f32 tensor rounded to dtype, on the GPU in dtype and on
// the CPU as the same values in f32.
struct RoundedInput {
  Tensor gpu;
  Tensor cpu;
};
inline RoundedInput rounded_input(const Tensor& f32, DType dtype) {
  const Tensor rounded = cast_to(f32, dtype);
  return {on_gpu(rounded), cast_to(rounded, DType::f32)};
}

// A GPU tensor of any float dtype as f32 values on the CPU (widening is exact).
inline Tensor values_of(const Tensor& gpu) { return cast_to(on_cpu(gpu), DType::f32); }

// The CPU's f32 result rounded once to dtype, as f32 values.
inline Tensor rounded_once(const Tensor& f32, DType dtype) {
  return cast_to(cast_to(f32, dtype), DType::f32);
}

}  // namespace ruche::testing
