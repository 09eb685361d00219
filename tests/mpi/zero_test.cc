// ZeRO-1's pieces: the range plan (a pure function of the layout and world size), the
// collectives with per-rank counts it runs on, and the optimizer over one range (its slots hold
// that range only). End to end (against plain data parallelism, resharded resume):
// tests/dp/zero.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "comm/mpi/mpi_communicator.h"
#include "comm/zero_plan.h"
#include "engine/optim/optimizer.h"
#include "tests/mpi/mpi_env.h"

namespace ruche {
namespace {

using testing::world;

std::vector<GradRange> tensors_of(const std::vector<std::int64_t>& sizes) {
  std::vector<GradRange> t;
  std::int64_t at = 0;
  for (const std::int64_t n : sizes) {
    t.push_back({at, at + n});
    at += n;
  }
  return t;
}

TEST(ZeroPlan, CutsAtTheTensorBoundaryNearestAnEqualShare) {
  // 1250 elements: ideal cuts at 625 (boundaries 450, 1050) and 416.7 / 833.3
  // for 3 ranks.
  const auto t = tensors_of({100, 300, 50, 600, 200});
  EXPECT_EQ(plan_zero_ranges(t, 1), (std::vector<GradRange>{{0, 1250}}));
  EXPECT_EQ(plan_zero_ranges(t, 2), (std::vector<GradRange>{{0, 450}, {450, 1250}}));
  EXPECT_EQ(plan_zero_ranges(t, 3), (std::vector<GradRange>{{0, 400}, {400, 1050}, {1050, 1250}}));
  // Equal tensors split evenly; the order the tensors are given in does not
  // matter.
  auto even = tensors_of({10, 10, 10, 10, 10, 10});
  std::reverse(even.begin(), even.end());
  EXPECT_EQ(plan_zero_ranges(even, 3), (std::vector<GradRange>{{0, 20}, {20, 40}, {40, 60}}));
}

TEST(ZeroPlan, TilesTheBufferEvenWithMoreRanksThanTensors) {
  const auto t = tensors_of({1000, 5, 5});
  const auto ranks = plan_zero_ranges(t, 4);
  ASSERT_EQ(ranks.size(), 4u);
  std::int64_t at = 0;
  for (const GradRange& r : ranks) {
    EXPECT_EQ(r.begin, at);
    EXPECT_GE(r.end, r.begin);
    at = r.end;
  }
  EXPECT_EQ(at, 1010);
  // One big tensor is never split: the cuts nearest 252 and 757 are 0 and 1000,
  // so ranks 0 and 2 hold nothing (the largest load, 1000, cannot be lower).
  EXPECT_EQ(ranks, (std::vector<GradRange>{{0, 0}, {0, 1000}, {1000, 1000}, {1000, 1010}}));
}

TEST(ZeroPlan, CountsWithinASpanSumToIt) {
  const std::vector<GradRange> ranks{{0, 400}, {400, 1050}, {1050, 1250}};
  EXPECT_EQ(counts_within(ranks, {300, 1100}), (std::vector<std::int64_t>{100, 650, 50}));
  EXPECT_EQ(counts_within(ranks, {0, 100}), (std::vector<std::int64_t>{100, 0, 0}));
}

BufferView view(std::vector<float>& x) {
  return {x.data(), DType::f32, static_cast<std::int64_t>(x.size()), Device::cpu()};
}

// Rank r contributes r + 1 + i at element i of [0, total); rank counts 3, 0, 5,
// ... (one empty).
std::vector<std::int64_t> uneven_counts(int size) {
  std::vector<std::int64_t> counts;
  counts.reserve(static_cast<std::size_t>(size));
  for (int r = 0; r < size; ++r) counts.push_back(r == 1 ? 0 : 3 + 2 * r);
  return counts;
}

TEST(ZeroCollectives, ReduceScatterWithUnequalCounts) {
  MpiCommunicator comm(world());
  const int rank = comm.rank(), size = comm.size();
  const auto counts = uneven_counts(size);
  const std::int64_t total = std::accumulate(counts.begin(), counts.end(), std::int64_t{0});
  std::vector<float> send(static_cast<std::size_t>(total));
  for (std::size_t i = 0; i < send.size(); ++i) send[i] = static_cast<float>(rank + 1 + i);
  std::vector<float> recv(static_cast<std::size_t>(counts[static_cast<std::size_t>(rank)]), -1);
  comm.reduce_scatter_v(view(send), view(recv), counts, ReduceOp::avg).wait();
  const std::int64_t first =
      std::accumulate(counts.begin(), counts.begin() + rank, std::int64_t{0});
  // avg over ranks of (r + 1 + i) = (size + 1) / 2 + i.
  for (std::size_t i = 0; i < recv.size(); ++i) {
    EXPECT_FLOAT_EQ(recv[i], static_cast<float>(size + 1) / 2 + static_cast<float>(first) +
                                 static_cast<float>(i))
        << "element " << i << " of rank " << rank;
  }
  std::vector<float> wrong(recv.size() + 1);
  EXPECT_THROW(comm.reduce_scatter_v(view(send), view(wrong), counts, ReduceOp::sum), Error);
}

TEST(ZeroCollectives, AllGatherInPlaceWithUnequalCounts) {
  MpiCommunicator comm(world());
  const int rank = comm.rank(), size = comm.size();
  const auto counts = uneven_counts(size);
  std::vector<float> buffer;
  for (int r = 0; r < size; ++r) {
    // Each rank fills only its own chunk; the others hold garbage until the
    // gather.
    for (std::int64_t i = 0; i < counts[static_cast<std::size_t>(r)]; ++i) {
      buffer.push_back(r == rank ? static_cast<float>(100 * r + i) : -7.0f);
    }
  }
  comm.all_gather_v(view(buffer), counts, "test").wait();
  std::size_t at = 0;
  for (int r = 0; r < size; ++r) {
    for (std::int64_t i = 0; i < counts[static_cast<std::size_t>(r)]; ++i, ++at) {
      EXPECT_EQ(buffer[at], static_cast<float>(100 * r + i)) << "rank " << r << " element " << i;
    }
  }
}

// The memory ZeRO-1 saves: each rank's optimizer slots hold its range only, and
// the ranges of all ranks together hold the buffer once.
TEST(ZeroOptimizer, SlotsHoldOnlyTheRanksRange) {
  const int rank = world().rank(), size = world().size();
  std::vector<ParamEntry> table;
  std::int64_t at = 0;
  for (const std::int64_t n : {64, 8, 512, 16, 40, 4}) {
    ParamEntry e;
    e.name = std::to_string(table.size());
    e.shape = Shape{n};
    e.offset = at;
    e.count = n;
    table.push_back(e);
    at += n;
  }
  std::vector<GradRange> tensors;
  tensors.reserve(table.size());
  for (const ParamEntry& e : table) tensors.push_back({e.offset, e.offset + e.count});
  const auto ranks = plan_zero_ranges(tensors, size);
  const GradRange mine = ranks[static_cast<std::size_t>(rank)];
  proto::SolverParameter solver;
  solver.set_type("adam");
  auto optimizer = make_optimizer(solver, table, at, Device::cpu(), mine.begin, mine.end);
  ASSERT_EQ(optimizer->slots().size(), 2u);
  for (auto& [name, slot] : optimizer->slots()) {
    EXPECT_EQ(slot->numel(), mine.end - mine.begin) << name;
  }
  EXPECT_EQ(optimizer->offset(), mine.begin);
  EXPECT_EQ(optimizer->whole(), at);
  if (size > 1) {
    EXPECT_LT(mine.end - mine.begin, at);
  }
  // An update of the range touches only the range's parameters and matches the
  // whole optimizer's.
  std::vector<float> p(static_cast<std::size_t>(at)), g(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    p[i] = 0.01f * static_cast<float>(i % 13);
    g[i] = 0.1f - 0.003f * static_cast<float>(i % 17);
  }
  Tensor whole_p = Tensor::from_blob(p.data(), Shape{at}, DType::f32).clone();
  Tensor whole_g = Tensor::from_blob(g.data(), Shape{at}, DType::f32);
  auto whole = make_optimizer(solver, table, at, Device::cpu());
  whole->step(whole_p, whole_g, 0.1f);
  Tensor part_p = Tensor::from_blob(p.data(), Shape{at}, DType::f32).clone();
  Tensor range_p = part_p.narrow(0, mine.begin, mine.end - mine.begin);
  Tensor range_g = whole_g.narrow(0, mine.begin, mine.end - mine.begin).clone();
  optimizer->step(range_p, range_g, 0.1f);
  for (std::int64_t i = 0; i < at; ++i) {
    const float expected = i >= mine.begin && i < mine.end ? whole_p.data<float>()[i] : p[i];
    ASSERT_EQ(part_p.data<float>()[i], expected) << "element " << i;
  }
}

}  // namespace
}  // namespace ruche
