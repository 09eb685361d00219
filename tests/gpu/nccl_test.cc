// The NCCL communicator with a world of one (label gpu; skips without a device): every
// collective is the identity or the average of one, so its result must equal the plain one, to
// the bit. Multi-GPU runs need GPUs per rank and are not a unit test.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "comm/mpi/mpi_communicator.h"
#include "comm/nccl/nccl_communicator.h"
#include "comm/routed_communicator.h"
#include "comm/world.h"
#include "tests/gpu/gpu_support.h"

namespace ruche {
namespace {

using testing::on_cpu;
using testing::on_gpu;

// One World per process (MPI initializes once): a singleton world without mpirun.
const World& the_world() {
  static World world;
  return world;
}

Tensor arbitrary(std::int64_t n, float seed) {
  Tensor t = Tensor::zeros(Shape{n}, DType::f32, Device::cpu());
  for (std::int64_t i = 0; i < n; ++i) t.data<float>()[i] = std::sin(0.37f * i + seed) * 3.0f;
  return t;
}

void expect_same_bits(const Tensor& got, const Tensor& expected) {
  const Tensor a = on_cpu(got), b = on_cpu(expected);
  ASSERT_EQ(a.numel(), b.numel());
  ASSERT_EQ(std::memcmp(a.data<float>(), b.data<float>(), a.numel() * sizeof(float)), 0);
}

class NcclWorldOfOne : public ::testing::TestWithParam<bool> {};  // param: host_wait

TEST_P(NcclWorldOfOne, EveryCollectiveIsThePlainResult) {
  RUCHE_REQUIRE_CUDA();
  const World& world = the_world();
  ASSERT_EQ(world.size(), 1) << "run this test without mpirun";
  MpiCommunicator host(world);
  NcclOptions nccl_options;
  nccl_options.host_wait = GetParam();
  NcclCommunicator nccl(world, host, 0, CommOptions{}, nccl_options);
  EXPECT_EQ(nccl.size(), 1);
  EXPECT_TRUE(nccl.takes_device_buffers());

  const Tensor plain = arbitrary(100003, 1.0f);
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg}) {
    Tensor x = on_gpu(plain);
    nccl.all_reduce(BufferView::of(x), op, "identity").wait();
    expect_same_bits(x, plain);  // the copy to the host runs after the wait on the stream
  }
  Tensor b = on_gpu(plain);
  nccl.broadcast(BufferView::of(b), 0, "from rank 0").wait();
  expect_same_bits(b, plain);

  Tensor send = on_gpu(plain);
  Tensor recv = on_gpu(Tensor::zeros(Shape{plain.numel()}, DType::f32, Device::cpu()));
  nccl.all_gather(BufferView::of(send), BufferView::of(recv), "gather").wait();
  expect_same_bits(recv, plain);
  Tensor scattered = on_gpu(Tensor::zeros(Shape{plain.numel()}, DType::f32, Device::cpu()));
  nccl.reduce_scatter(BufferView::of(send), BufferView::of(scattered), ReduceOp::avg, "scatter")
      .wait();
  expect_same_bits(scattered, plain);

  // Two buckets launched as one group: inside it their Work is not launched yet (test() says
  // not done, wait() is a named bug), after end_group() it is.
  Tensor whole = on_gpu(plain);
  nccl.begin_group();
  Work first = nccl.all_reduce(BufferView::of(whole.narrow(0, 0, 50000)), ReduceOp::avg, "b1");
  Work second = nccl.all_reduce(BufferView::of(whole.narrow(0, 50000, plain.numel() - 50000)),
                                ReduceOp::avg, "b2");
  EXPECT_FALSE(first.test());
  EXPECT_THROW(second.wait(), InternalError);
  nccl.end_group();
  first.wait();
  second.wait();
  expect_same_bits(whole, plain);

  // An error inside a group (a host buffer) unwinds through CommGroup, which ends the group:
  // the next collective launches at once instead of waiting in a group never closed.
  Tensor on_host = plain.to(Device::cpu());
  try {
    CommGroup group(nccl);
    nccl.all_reduce(BufferView::of(on_host), ReduceOp::sum, "refused");
    group.end();
    ADD_FAILURE() << "a host buffer was taken by NCCL";
  } catch (const Error&) {
  }
  Tensor after = on_gpu(plain);
  Work alone = nccl.all_reduce(BufferView::of(after), ReduceOp::avg, "after the group");
  bool done = false;
  for (int i = 0; i < 5000 && !done; ++i) {  // up to 5 s; a deferred one never completes
    done = alone.test();
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(done) << "the collective after a failed group was deferred";
  expect_same_bits(after, plain);

  // Host buffers are refused here, and routed to MPI by the RoutedCommunicator.
  EXPECT_THROW(nccl.all_reduce(BufferView::of(on_host), ReduceOp::sum), Error);
  RoutedCommunicator routed(host, nccl);
  routed.all_reduce(BufferView::of(on_host), ReduceOp::avg, "host").wait();
  expect_same_bits(on_host, plain);
}

INSTANTIATE_TEST_SUITE_P(WaitOnStreamOrHost, NcclWorldOfOne, ::testing::Values(false, true));

// ZeRO-1's collectives with per-rank counts (one rooted NCCL call per chunk, in a group): in a
// world of one, the reduce-scatter copies send to recv and the all-gather leaves the buffer as it
// is; both inside a Reducer-style outer group too (NCCL groups nest), and through the router.
TEST(NcclWorldOfOneV, PerRankCountsAreThePlainResult) {
  RUCHE_REQUIRE_CUDA();
  const World& world = the_world();
  ASSERT_EQ(world.size(), 1) << "run this test without mpirun";
  MpiCommunicator host(world);
  NcclOptions nccl_options;
  nccl_options.host_wait = true;
  NcclCommunicator nccl(world, host, 0, CommOptions{}, nccl_options);
  RoutedCommunicator routed(host, nccl);
  const Tensor plain = arbitrary(70001, 3.0f);
  for (Communicator* comm :
       {static_cast<Communicator*>(&nccl), static_cast<Communicator*>(&routed)}) {
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg}) {
      Tensor send = on_gpu(plain);
      Tensor recv = on_gpu(Tensor::zeros(Shape{plain.numel()}, DType::f32, Device::cpu()));
      comm->reduce_scatter_v(BufferView::of(send), BufferView::of(recv), {plain.numel()}, op,
                             "shard")
          .wait();
      expect_same_bits(recv, plain);
    }
    Tensor gathered = on_gpu(plain);
    comm->all_gather_v(BufferView::of(gathered), {plain.numel()}, "parameters").wait();
    expect_same_bits(gathered, plain);

    // Two buckets' reduce-scatters in one outer group, each its own inner group.
    Tensor grads = on_gpu(plain);
    Tensor shard = on_gpu(Tensor::zeros(Shape{plain.numel()}, DType::f32, Device::cpu()));
    comm->begin_group();
    Work first = comm->reduce_scatter_v(BufferView::of(grads.narrow(0, 0, 30000)),
                                        BufferView::of(shard.narrow(0, 0, 30000)), {30000},
                                        ReduceOp::avg, "bucket 1");
    Work second =
        comm->reduce_scatter_v(BufferView::of(grads.narrow(0, 30000, plain.numel() - 30000)),
                               BufferView::of(shard.narrow(0, 30000, plain.numel() - 30000)),
                               {plain.numel() - 30000}, ReduceOp::avg, "bucket 2");
    comm->end_group();
    first.wait();
    second.wait();
    expect_same_bits(shard, plain);
  }
  // Counts that do not tile the buffer are refused before anything is launched.
  Tensor x = on_gpu(plain);
  EXPECT_THROW(nccl.all_gather_v(BufferView::of(x), {plain.numel() - 1}), Error);
  EXPECT_THROW(nccl.all_gather_v(BufferView::of(x), {1, plain.numel() - 1}), Error);
  // Host buffers go to MPI through the router.
  Tensor host_send = plain.to(Device::cpu());
  Tensor host_recv = Tensor::zeros(Shape{plain.numel()}, DType::f32, Device::cpu());
  routed
      .reduce_scatter_v(BufferView::of(host_send), BufferView::of(host_recv), {plain.numel()},
                        ReduceOp::avg, "host shard")
      .wait();
  expect_same_bits(host_recv, plain);
}

TEST(NcclHierarchical, WorldOfOneIsThePlainResult) {
  RUCHE_REQUIRE_CUDA();
  const World& world = the_world();
  ASSERT_EQ(world.size(), 1) << "run this test without mpirun";
  MpiCommunicator host(world);
  CommOptions options;
  options.hierarchical_allreduce = true;
  NcclCommunicator nccl(world, host, 0, options);
  const Tensor plain = arbitrary(4099, 2.0f);
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg}) {
    Tensor x = on_gpu(plain);
    nccl.all_reduce(BufferView::of(x), op, "hierarchical identity").wait();
    expect_same_bits(x, plain);  // avg: times 1/1 (NCCL's pre-multiplied sum)
  }
}

}  // namespace
}  // namespace ruche
