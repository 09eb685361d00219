#include <gtest/gtest.h>
#include <sys/resource.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/mpi/mpi_communicator.h"
#include "engine/tensor/tensor.h"
#include "tests/mpi/mpi_env.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::error_of;
using testing::world;

template <typename T>
BufferView view(std::vector<T>& v) {
  return {v.data(), DTypeOf<T>::value, static_cast<std::int64_t>(v.size()), Device::cpu()};
}

// An arbitrary float, different per rank: sums of these round.
float value(int rank, std::int64_t i) {
  return std::sin(0.37f * static_cast<float>(i) + static_cast<float>(rank)) *
         static_cast<float>(rank + 1);
}

// With 1 or 2 ranks a reduction is exact to the bit (a+b == b+a); with more, MPI's order may
// differ from ours: norm-relative error under 1e-6.
void expect_reduced(const std::vector<float>& got, const std::vector<float>& expected, int size) {
  ASSERT_EQ(got.size(), expected.size());
  if (size <= 2) {
    for (std::size_t i = 0; i < got.size(); ++i) {
      // Bit for bit: the promise for 2 ranks (and -0.0f != 0.0f here, as it should).
      ASSERT_EQ(std::bit_cast<std::uint32_t>(got[i]), std::bit_cast<std::uint32_t>(expected[i]))
          << "element " << i << ": " << got[i] << " != " << expected[i];
    }
    return;
  }
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    diff += (double(got[i]) - expected[i]) * (double(got[i]) - expected[i]);
    norm += double(expected[i]) * expected[i];
  }
  EXPECT_LE(std::sqrt(diff), 1e-6 * std::sqrt(norm));
}

class Collectives : public ::testing::Test {
 protected:
  const int rank = world().rank();
  const int size = world().size();
  MpiCommunicator comm{world()};

  // Every rank's copy of x must be the same bits.
  void expect_same_on_every_rank(std::vector<float>& x) {
    std::vector<float> all(x.size() * static_cast<std::size_t>(size));
    comm.all_gather(view(x), view(all)).wait();
    for (int r = 0; r < size; ++r) {
      ASSERT_EQ(std::memcmp(all.data() + r * x.size(), x.data(), x.size() * sizeof(float)), 0)
          << "rank " << r << " differs from rank " << rank;
    }
  }
};

TEST_F(Collectives, AllReduceSumAndAvg) {
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg}) {
    const std::int64_t n = 1000;
    std::vector<float> x(n), expected(n);
    for (std::int64_t i = 0; i < n; ++i) {
      x[i] = value(rank, i);
      float sum = 0;
      for (int r = 0; r < size; ++r) sum += value(r, i);
      expected[i] = op == ReduceOp::avg ? sum / static_cast<float>(size) : sum;
    }
    comm.all_reduce(view(x), op).wait();
    expect_reduced(x, expected, size);
    expect_same_on_every_rank(x);
  }
}

// From 256 KiB an all-reduce is one blocking MPI_Allreduce, then avg divides (a power-of-two
// world multiplies by 1/size: the same bits as / size), against the sum divided here.
TEST_F(Collectives, LargeAllReduceAvg) {
  const std::int64_t n = 2 * (std::int64_t{4} << 20) / 4 + 777;
  std::vector<float> x(static_cast<std::size_t>(n)), expected(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = value(rank, i);
    float sum = 0;
    for (int r = 0; r < size; ++r) sum += value(r, i);
    expected[i] = sum / static_cast<float>(size);
  }
  comm.all_reduce(view(x), ReduceOp::avg).wait();
  expect_reduced(x, expected, size);
  expect_same_on_every_rank(x);
}

TEST_F(Collectives, BroadcastFromFirstAndLastRank) {
  for (int root : {0, size - 1}) {
    std::vector<float> x(333);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = value(rank, static_cast<std::int64_t>(i));
    comm.broadcast(view(x), root).wait();
    for (std::size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(x[i], value(root, static_cast<std::int64_t>(i))) << "root " << root << " " << i;
    }
    std::vector<std::int64_t> y(17);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = rank * 1000000000000LL + std::int64_t(i);
    comm.broadcast(view(y), root).wait();
    for (std::size_t i = 0; i < y.size(); ++i)
      ASSERT_EQ(y[i], root * 1000000000000LL + std::int64_t(i));
  }
}

TEST_F(Collectives, AllGather) {
  const std::int64_t n = 5;
  std::vector<float> send(n), recv(n * size);
  std::vector<std::int32_t> send_i(n), recv_i(n * size);
  for (std::int64_t i = 0; i < n; ++i) {
    send[i] = value(rank, i);
    send_i[i] = rank * 100 + static_cast<std::int32_t>(i);
  }
  Work a = comm.all_gather(view(send), view(recv));
  Work b = comm.all_gather(view(send_i), view(recv_i));
  a.wait();
  b.wait();
  for (int r = 0; r < size; ++r) {
    for (std::int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(recv[r * n + i], value(r, i));
      ASSERT_EQ(recv_i[r * n + i], r * 100 + i);
    }
  }
}

TEST_F(Collectives, ReduceScatterSumAndAvg) {
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg}) {
    const std::int64_t n = 7;
    std::vector<float> send(n * size), recv(n), expected(n);
    for (std::int64_t i = 0; i < n * size; ++i) send[i] = value(rank, i);
    for (std::int64_t i = 0; i < n; ++i) {
      float sum = 0;
      for (int r = 0; r < size; ++r) sum += value(r, rank * n + i);
      expected[i] = op == ReduceOp::avg ? sum / static_cast<float>(size) : sum;
    }
    comm.reduce_scatter(view(send), view(recv), op).wait();
    expect_reduced(recv, expected, size);
  }
}

TEST_F(Collectives, Barrier) {
  comm.barrier().wait();
  Work w = comm.barrier();
  while (!w.test()) std::this_thread::yield();
  EXPECT_TRUE(w.test());  // done stays done
  w.wait();
}

// Queued collectives run in submission order on every rank, whatever order they are waited in.
TEST_F(Collectives, ManyAsyncCollectivesQueuedThenWaited) {
  const int count = 64;
  std::vector<std::vector<float>> buffers(count);
  std::vector<Work> works;
  for (int k = 0; k < count; ++k) {
    buffers[k].assign(100 + static_cast<std::size_t>(k), static_cast<float>(k + rank));
    if (k % 3 == 2) {
      works.push_back(comm.broadcast(view(buffers[k]), k % size));
    } else {
      works.push_back(comm.all_reduce(view(buffers[k]), ReduceOp::sum));
    }
  }
  for (int k = count - 1; k >= count / 2; --k) works[k].wait();  // the back half first
  for (int k = 0; k < count / 2; ++k) works[k].wait();
  for (int k = 0; k < count; ++k) {
    const float expected = k % 3 == 2 ? static_cast<float>(k + k % size)
                                      // 0 + 1 + ... + size - 1: exact
                                      // NOLINTNEXTLINE(bugprone-integer-division)
                                      : static_cast<float>(k * size + size * (size - 1) / 2);
    for (float x : buffers[k]) ASSERT_EQ(x, expected) << "collective " << k;
  }
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return double(t.tv_sec) + 1e-6 * double(t.tv_usec); };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Rank 0 waits about a second for the others (they sleep first): its comm thread polls with
// backoff sleeps, so it spends a small part of that second on the CPU, where a busy spin would
// spend nearly all of it. No clock is read: a descheduled rank 0 only uses less CPU.
TEST_F(Collectives, WaitingCostsNoCore) {
  if (size == 1) GTEST_SKIP() << "nobody to wait for";
  std::vector<float> x(16, 1.0f);
  if (rank != 0) std::this_thread::sleep_for(std::chrono::seconds(1));
  const double cpu_before = cpu_seconds();
  comm.all_reduce(view(x), ReduceOp::sum).wait();
  const double cpu = cpu_seconds() - cpu_before;
  if (rank == 0) {
    EXPECT_LT(cpu, 0.5) << cpu << " s of CPU while waiting about 1 s";
  }
  for (float v : x) EXPECT_EQ(v, static_cast<float>(size));
}

TEST_F(Collectives, LargeBuffer) {
  const std::int64_t n = 8 << 20;  // 8 M floats, 32 MB
  std::vector<float> x(n);
  for (std::int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 1024 + rank);
  comm.all_reduce(view(x), ReduceOp::sum).wait();
  // NOLINTNEXTLINE(bugprone-integer-division): 0 + 1 + ... + size - 1, exact
  const float offset = static_cast<float>(size * (size - 1) / 2);
  for (std::int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(x[i], static_cast<float>(size * (i % 1024)) + offset) << "element " << i;
  }
}

TEST_F(Collectives, ViewOfTensor) {
  Tensor t = Tensor::from_vector(std::vector<float>(6, 1.0f), Shape({2, 3}));
  BufferView v = BufferView::of(t);
  EXPECT_EQ(v.data, t.raw_data());
  EXPECT_EQ(v.count, 6);
  EXPECT_EQ(v.dtype, DType::f32);
  EXPECT_EQ(v.str(), "f32[6] cpu");
  comm.all_reduce(v, ReduceOp::avg).wait();
  for (float x : t.to_vector()) EXPECT_EQ(x, 1.0f);
  EXPECT_NE(error_of([&] { BufferView::of(t.transpose(0, 1)); }).find("not contiguous"),
            std::string::npos);
}

// Mistakes are caught when the collective is submitted, identically on every rank.
TEST_F(Collectives, BadViewsAreErrors) {
  std::vector<float> x(4);
  BufferView on_gpu{x.data(), DType::f32, 4, Device::cuda(0)};
  std::string message = error_of([&] { comm.all_reduce(on_gpu, ReduceOp::sum); });
  EXPECT_NE(message.find("f32[4] cuda:0"), std::string::npos) << message;
  EXPECT_NE(message.find("NCCL"), std::string::npos) << message;
  EXPECT_NE(error_of([&] { comm.broadcast(on_gpu, 0); }), "");
  EXPECT_NE(error_of([&] { comm.all_gather(view(x), on_gpu); }), "");

  BufferView bytes{x.data(), DType::u8, 4, Device::cpu()};
  EXPECT_NE(error_of([&] { comm.all_reduce(bytes, ReduceOp::sum); }).find("sums and averages"),
            std::string::npos);
  std::vector<float> small(3);
  EXPECT_NE(error_of([&] { comm.all_gather(view(x), view(small)); }).find("all_gather"),
            std::string::npos);
  EXPECT_NE(error_of([&] { comm.reduce_scatter(view(small), view(x), ReduceOp::sum); }), "");
  EXPECT_NE(error_of([&] { comm.broadcast(view(x), size); }).find("root"), std::string::npos);
  comm.barrier().wait();  // still in step
}

TEST(Work, EmptyIsDoneAndMovesKeepTheHandle) {
  Work empty;
  EXPECT_TRUE(empty.test());
  empty.wait();
  MpiCommunicator comm(world());
  std::vector<float> x(8, 1.0f);
  Work a = comm.all_reduce(view(x), ReduceOp::sum);
  Work b = std::move(a);
  b.wait();
  for (float v : x) EXPECT_EQ(v, static_cast<float>(world().size()));
  Work dropped = comm.barrier();  // destroyed pending: waits
}

}  // namespace
}  // namespace ruche
