// Channels-last (Layout::nhwc) tensors for the gpu tests, moved between layouts by plain host
// loops over bytes (any dtype, i32 indices and u8 masks included), so nothing leans on the
// reorders and casts under test; and an element-by-element comparison of an nhwc run with a plain
// one that names the first (n, c, h, w) that differs.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "engine/tensor/tensor.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/half_support.h"

namespace ruche::testing {

// A [N, C, H, W] tensor's elements moved between plain and channels-last order, whatever its tag
// and device, into a new plain-tagged CPU tensor of its dtype.
inline Tensor permuted(const Tensor& t, bool to_channels_last) {
  const Tensor src = on_cpu(t);
  Tensor out = Tensor::empty(src.shape(), src.dtype());
  const std::int64_t N = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  const std::size_t bytes = dtype_size(src.dtype());
  const auto* from = static_cast<const unsigned char*>(src.raw_data());
  auto* to = static_cast<unsigned char*>(out.raw_data());
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t c = 0; c < C; ++c) {
      for (std::int64_t h = 0; h < H; ++h) {
        for (std::int64_t w = 0; w < W; ++w) {
          const std::int64_t plain = ((n * C + c) * H + h) * W + w;
          const std::int64_t last = ((n * H + h) * W + w) * C + c;
          const std::int64_t i = to_channels_last ? plain : last;
          const std::int64_t o = to_channels_last ? last : plain;
          std::memcpy(to + o * bytes, from + i * bytes, bytes);
        }
      }
    }
  }
  return out;
}

// A plain CPU tensor as an nhwc one on the GPU.
inline Tensor nhwc_on_gpu(const Tensor& plain) {
  return on_gpu(permuted(plain, true).with_layout(Layout::nhwc));
}

// Plain f32 values (CPU) as a GPU tensor of `dtype` (rounded by the CPU's cast) in `layout`.
inline Tensor gpu_as(const Tensor& values, DType dtype, Layout layout) {
  const Tensor rounded = cast_to(values, dtype);
  return layout == Layout::nhwc ? nhwc_on_gpu(rounded) : on_gpu(rounded);
}

// A tensor's values (any device, plain or nhwc by its tag) as plain f32 on the CPU.
inline Tensor plain_values(const Tensor& t) {
  const Tensor plain = t.layout() == Layout::nhwc ? permuted(t, false) : on_cpu(t);
  return cast_to(plain, DType::f32);
}

// "(n, c, h, w)" of plain offset i in a [N, C, H, W] shape.
inline std::string element_name(const Shape& shape, std::int64_t i) {
  std::ostringstream s;
  s << "(" << i / (shape[1] * shape[2] * shape[3]) << ", " << i / (shape[2] * shape[3]) % shape[1]
    << ", " << i / shape[3] % shape[2] << ", " << i % shape[3] << ")";
  return s.str();
}

// Expects the nhwc run's result (any device, lying channels-last whatever its tag) to hold at
// every (n, c, h, w) the bits the plain run's result holds there. T: float (f32, bf16 and f16
// widened, exactly), std::int32_t or std::uint8_t.
template <typename T>
void expect_same_at_every_element(const Tensor& nhwc_run, const Tensor& plain_run,
                                  const std::string& what) {
  ASSERT_TRUE(nhwc_run.shape() == plain_run.shape()) << what;
  ASSERT_EQ(nhwc_run.dtype(), plain_run.dtype()) << what;
  const auto values = [](const Tensor& plain_cpu) {
    const DType d = plain_cpu.dtype();
    const bool floating = d == DType::f32 || d == DType::bf16 || d == DType::f16;
    return (floating ? cast_to(plain_cpu, DType::f32) : plain_cpu).to_vector<T>();
  };
  const std::vector<T> a = values(permuted(nhwc_run, false));
  const std::vector<T> e = values(on_cpu(plain_run));
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    // Bitwise, so a NaN must meet the same NaN.
    if (std::memcmp(&a[i], &e[i], sizeof(T)) != 0 && mismatches++ == 0) first = i;
  }
  if (mismatches == 0) return;
  ADD_FAILURE() << what << ": " << mismatches << " of " << a.size()
                << " elements differ between the nhwc and the plain run, the first at (n, c, h, w) "
                << element_name(plain_run.shape(), static_cast<std::int64_t>(first)) << ": nhwc "
                << +a[first] << ", plain " << +e[first];
}

}  // namespace ruche::testing
