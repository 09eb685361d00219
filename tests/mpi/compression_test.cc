// 16-bit all-reduces and the Reducer's gradient compression, under mpirun with 2 and 3 ranks and
// alone.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/tensor/half.h"
#include "comm/mpi/mpi_communicator.h"
#include "comm/reducer.h"
#include "tests/mpi/mpi_env.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::error_of;
using testing::world;

std::uint16_t narrow1(DType wire, float x) {
  return wire == DType::bf16 ? half::bf16_from_f32(x) : half::f16_from_f32(x);
}
float widen1(DType wire, std::uint16_t h) {
  return wire == DType::bf16 ? half::bf16_to_f32(h) : half::f16_to_f32(h);
}

// Small integers sum exactly in 16 bits, so the MPI op's result is known to the bit.
TEST(Compression, SixteenBitAllReducesSumAndAverage) {
  MpiCommunicator comm(world());
  const int size = comm.size(), rank = comm.rank();
  for (DType wire : {DType::f16, DType::bf16}) {
    const int n = 5000;  // large enough that MPI splits it into pieces
    std::vector<std::uint16_t> x(n), y(n);
    for (int i = 0; i < n; ++i) x[i] = y[i] = narrow1(wire, static_cast<float>(i % 7 - 3 + rank));
    comm.all_reduce({x.data(), wire, n, Device::cpu()}, ReduceOp::sum).wait();
    comm.all_reduce({y.data(), wire, n, Device::cpu()}, ReduceOp::avg).wait();
    for (int i = 0; i < n; ++i) {
      // NOLINTNEXTLINE(bugprone-integer-division): exact, size * (size - 1) is even
      const float sum = static_cast<float>(size * (i % 7 - 3) + size * (size - 1) / 2);
      ASSERT_EQ(widen1(wire, x[i]), sum) << dtype_name(wire) << " element " << i;
      ASSERT_EQ(y[i], narrow1(wire, sum / static_cast<float>(size))) << dtype_name(wire);
    }
    std::vector<std::uint16_t> send(static_cast<std::size_t>(2 * size)), recv(2);
    for (auto& v : send) v = narrow1(wire, 1.0f);
    comm.reduce_scatter({send.data(), wire, 2 * size, Device::cpu()},
                        {recv.data(), wire, 2, Device::cpu()}, ReduceOp::sum)
        .wait();
    EXPECT_EQ(widen1(wire, recv[1]), static_cast<float>(size));
  }
}

// Tensors of very different scales, tiling [0, 151000).
std::vector<GradRange> layout() {
  std::vector<GradRange> t;
  std::int64_t at = 0;
  for (std::int64_t n : {1000, 100000, 50000}) {
    t.push_back({at, at + n});
    at += n;
  }
  return t;
}
float gradient(int rank, std::int64_t i) {
  const float scale = i < 1000 ? 1e-3f : i < 101000 ? 1.0f : 30.0f;
  return std::sin(0.37f * static_cast<float>(i) + static_cast<float>(rank)) *
         static_cast<float>(rank + 1) * scale;
}

// Against the exact average a = sum(g_r) / n: each of the n narrowings of g_r / n and each of
// the n - 1 16-bit partial sums rounds once, by at most u times its size (u = 2^-11 for f16,
// 2^-8 for bf16; every partial sum is at most S = sum(|g_r|) / n), or by half the smallest
// subnormal (f16: 2^-25) near zero. So |c - a| <= n u (1 + n u) S + 2 n 2^-25 (the partial
// sums carry earlier errors: second order), plus 4 f32 roundings for the scaling by 1/n. And
// every rank must hold the same bits.
TEST(Compression, ReducerMatchesTheF32AverageWithinRoundingAndAgreesEverywhere) {
  MpiCommunicator comm(world());
  const int size = comm.size(), rank = comm.rank();
  const std::int64_t count = layout().back().end;
  for (DType wire : {DType::f16, DType::bf16}) {
    const double u = wire == DType::f16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
    const double tiny = wire == DType::f16 ? std::ldexp(1.0, -25) : 0.0;
    Tensor grads = Tensor::empty({count});
    float* g = grads.data<float>();
    for (std::int64_t i = 0; i < count; ++i) g[i] = gradient(rank, i);
    ReducerOptions o{8000, 4000, wire};  // the first tensor alone, then the others: 3 buckets
    Reducer reducer(comm, grads, layout(), o);
    ASSERT_EQ(reducer.buckets().size(), 3u);
    for (int step = 0; step < 2; ++step) {  // the scratch buffer is reused
      if (step == 1) {
        for (std::int64_t i = 0; i < count; ++i) g[i] = gradient(rank, i);
      }
      for (const GradRange& t : layout()) reducer.mark_ready(t.begin, t.end);
      reducer.finish();
    }
    double worst = 0;
    for (std::int64_t i = 0; i < count; ++i) {
      double exact = 0, s = 0;
      for (int r = 0; r < size; ++r) {
        exact += gradient(r, i);
        s += std::fabs(gradient(r, i));
      }
      exact /= size;
      s /= size;
      const double bound =
          (size * u * (1 + size * u) + 4 * std::ldexp(1.0, -24)) * s + 2 * size * tiny;
      ASSERT_LE(std::fabs(g[i] - exact), bound)
          << dtype_name(wire) << " element " << i << ": " << g[i] << " vs " << exact;
      if (bound > 0) worst = std::max(worst, std::fabs(g[i] - exact) / bound);
      if (size == 1) {
        ASSERT_EQ(g[i], widen1(wire, narrow1(wire, gradient(0, i))));  // one rounding, no sum
      }
    }
    if (rank == 0) {
      std::printf("%s on %d ranks: the worst element's error is %.2f of its bound\n",
                  std::string(dtype_name(wire)).c_str(), size, worst);
    }
    std::vector<float> all(static_cast<std::size_t>(count * size));
    comm.all_gather(BufferView::of(grads), {all.data(), DType::f32, count * size, Device::cpu()})
        .wait();
    for (int r = 1; r < size; ++r) {
      EXPECT_EQ(std::memcmp(all.data(), all.data() + r * count, count * sizeof(float)), 0)
          << dtype_name(wire) << ": rank " << r << " differs from rank 0";
    }
  }
}

TEST(Compression, FlagNames) {
  EXPECT_EQ(grad_compression_from_name("none"), DType::f32);
  EXPECT_EQ(grad_compression_from_name("fp16"), DType::f16);
  EXPECT_EQ(grad_compression_from_name("bf16"), DType::bf16);
  EXPECT_NE(error_of([] { grad_compression_from_name("fp8"); }).find("none, fp16 or bf16"),
            std::string::npos);
}

}  // namespace
}  // namespace ruche
