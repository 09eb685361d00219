// The hierarchical all-reduce (CommOptions::hierarchical_allreduce) against the flat one, on
// every comm_test configuration: one real node (np2, np3) and pretend nodes (RUCHE_FAKE_NODES=2
// with 3 and 4 ranks, =3 with 3), where the leaders' stage runs.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "comm/mpi/mpi_communicator.h"
#include "engine/tensor/half.h"
#include "tests/mpi/mpi_env.h"

namespace ruche {
namespace {

using testing::world;

// The buffer after an all-reduce of `mine` over the ranks: flat, or hierarchical. One
// communicator alive at a time (MPI may be only SERIALIZED).
template <typename T>
std::vector<T> all_reduced(std::vector<T> mine, DType dtype, ReduceOp op, bool hierarchical) {
  CommOptions options;
  options.hierarchical_allreduce = hierarchical;
  MpiCommunicator comm(world(), options);
  comm.all_reduce({mine.data(), dtype, static_cast<std::int64_t>(mine.size()), Device::cpu()}, op,
                  hierarchical ? "hierarchical" : "flat")
      .wait();
  return mine;
}

// Bit for bit, as an unsigned integer of T's size: an f32 -0.0f is not 0.0f here.
template <typename T>
void expect_same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint16_t>;
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(std::bit_cast<Bits>(a[i]), std::bit_cast<Bits>(b[i])) << "element " << i;
  }
}

// Small multiples of 1/4: every partial sum is exact in f32, f16 and bf16, so any order of
// summation gives the same bits. (1000 elements: the 256 KiB blocking path is not needed here.)
float exact_value(int rank, std::size_t i) {
  return static_cast<float>(static_cast<int>((i * 7 + static_cast<std::size_t>(rank) * 13) % 29) -
                            14) /
         4.0f;
}

TEST(Hierarchical, F32WithExactSumsIsBitwiseTheFlatResult) {
  std::vector<float> mine(1000);
  for (std::size_t i = 0; i < mine.size(); ++i) mine[i] = exact_value(world().rank(), i);
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg}) {
    const auto flat = all_reduced(mine, DType::f32, op, false);
    const auto hier = all_reduced(mine, DType::f32, op, true);
    expect_same_bits(hier, flat);
    // And it is the reduction: element 5 against a sum computed here.
    float expected = 0;
    for (int r = 0; r < world().size(); ++r) expected += exact_value(r, 5);
    if (op == ReduceOp::avg) expected /= static_cast<float>(world().size());
    EXPECT_EQ(hier[5], expected);
  }
}

TEST(Hierarchical, F32WithRoundedSumsIsWithin1e6OfTheFlatResult) {
  std::vector<float> mine(70000);  // past 256 KiB, where the flat path blocks
  for (std::size_t i = 0; i < mine.size(); ++i) {
    mine[i] = std::sin(0.37f * static_cast<float>(i) + static_cast<float>(world().rank())) *
              static_cast<float>(world().rank() + 1);
  }
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg}) {
    const auto flat = all_reduced(mine, DType::f32, op, false);
    const auto hier = all_reduced(mine, DType::f32, op, true);
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < flat.size(); ++i) {
      diff += (double(hier[i]) - flat[i]) * (double(hier[i]) - flat[i]);
      norm += double(flat[i]) * flat[i];
    }
    EXPECT_LE(std::sqrt(diff), 1e-6 * std::sqrt(norm));
    if (world().size() <= 2) expect_same_bits(hier, flat);  // a + b == b + a
  }
}

TEST(Hierarchical, SixteenBitFloatsWithExactSumsAreBitwiseTheFlatResult) {
  for (DType dtype : {DType::f16, DType::bf16}) {
    std::vector<std::uint16_t> mine(1000);
    for (std::size_t i = 0; i < mine.size(); ++i) {
      const float v = exact_value(world().rank(), i);
      mine[i] = dtype == DType::f16 ? half::f16_from_f32(v) : half::bf16_from_f32(v);
    }
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg}) {
      const auto flat = all_reduced(mine, dtype, op, false);
      const auto hier = all_reduced(mine, dtype, op, true);
      expect_same_bits(hier, flat);
      float expected = 0;
      for (int r = 0; r < world().size(); ++r) expected += exact_value(r, 9);
      if (op == ReduceOp::sum) {
        EXPECT_EQ(dtype == DType::f16 ? half::f16_to_f32(hier[9]) : half::bf16_to_f32(hier[9]),
                  expected)
            << dtype_name(dtype);
      }
    }
  }
}

TEST(Hierarchical, IntegerSumsAreExact) {
  std::vector<std::int64_t> mine(100);
  for (std::size_t i = 0; i < mine.size(); ++i) {
    mine[i] = (std::int64_t{1} << 40) * world().rank() + static_cast<std::int64_t>(i);
  }
  const auto hier = all_reduced(mine, DType::i64, ReduceOp::sum, true);
  const std::int64_t n = world().size();
  for (std::size_t i = 0; i < hier.size(); ++i) {
    ASSERT_EQ(hier[i],
              (std::int64_t{1} << 40) * n * (n - 1) / 2 + n * static_cast<std::int64_t>(i));
  }
}

}  // namespace
}  // namespace ruche
