// The watchdog and the descriptions ranks compare, without ending the job: the Expire callback
// records instead. The real aborts run as their own ctests (comm_fault.cc).
#include "comm/watchdog.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "comm/mpi/collective_info.h"
#include "comm/mpi/mpi_communicator.h"
#include "tests/mpi/mpi_env.h"

namespace ruche {
namespace {

using testing::world;

struct Recorder {
  std::vector<std::string> lines;
  Watchdog::Expire expire() {
    return [this](const std::string& line) { lines.push_back(line); };
  }
};

void sleep_seconds(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

TEST(Watchdog, ExpiresOnceWhenACollectiveOutlivesTheTimeout) {
  Recorder r;
  Watchdog dog(3, 0.05, r.expire());
  dog.check();  // nothing running
  dog.start("all_reduce sum f32[8] (gradient bucket 1 of 2, collective #7)");
  sleep_seconds(0.06);
  dog.check();
  dog.check();
  ASSERT_EQ(r.lines.size(), 1u);
  EXPECT_EQ(r.lines[0],
            "ruche: rank 3: watchdog: all_reduce sum f32[8] (gradient bucket 1 of 2, collective "
            "#7) has not completed in 0.05 s; aborting the job");
}

TEST(Watchdog, AWaiterCatchesAStuckCommThreadLater) {
  Recorder r;
  Watchdog dog(0, 0.05, r.expire());
  dog.start("barrier (collective #1)");
  sleep_seconds(0.08);
  dog.check_stuck();
  ASSERT_EQ(r.lines.size(), 1u);
  EXPECT_NE(r.lines[0].find("barrier (collective #1) is stuck"), std::string::npos) << r.lines[0];
  EXPECT_NE(r.lines[0].find("0.075 s"), std::string::npos) << r.lines[0];
}

TEST(Watchdog, QuietWhenDoneInTimeOrDisabled) {
  Recorder r;
  Watchdog dog(0, 100, r.expire());
  dog.start("barrier (collective #1)");
  dog.check();
  dog.check_stuck();
  dog.stop();
  Watchdog off(0, 0, r.expire());
  EXPECT_FALSE(off.enabled());
  off.start("barrier (collective #1)");
  sleep_seconds(0.01);
  off.check();
  off.check_stuck();
  EXPECT_TRUE(r.lines.empty());
  Watchdog stopped(0, 0.01, r.expire());
  stopped.start("barrier (collective #1)");
  stopped.stop();
  sleep_seconds(0.02);
  stopped.check();
  EXPECT_TRUE(r.lines.empty());
}

CollectiveInfo info(std::uint64_t seq, CollectiveKind kind, DType dtype, std::int64_t count,
                    std::int32_t arg, std::string label = {}) {
  CollectiveInfo c;
  c.seq = seq;
  c.kind = kind;
  c.dtype = dtype;
  c.count = count;
  c.arg = arg;
  c.label = std::move(label);
  return c;
}

TEST(CollectiveInfo, NamesTheCollective) {
  EXPECT_EQ(
      info(57, CollectiveKind::all_reduce, DType::f32, 1000, 1, "gradient bucket 2 of 3").str(),
      "all_reduce avg f32[1000] (gradient bucket 2 of 3, collective #57)");
  EXPECT_EQ(info(3, CollectiveKind::broadcast, DType::u8, 10, 2).str(),
            "broadcast u8[10] from rank 2 (collective #3)");
  EXPECT_EQ(info(4, CollectiveKind::reduce_scatter, DType::bf16, 8, 0).op_str(),
            "reduce_scatter sum bf16[8] per rank");
  EXPECT_EQ(info(5, CollectiveKind::barrier, DType::f32, 0, 0).op_str(), "barrier");
}

TEST(CollectiveInfo, TheWireFormKeepsAllButALongLabelsTail) {
  const CollectiveInfo a =
      info(1ULL << 40, CollectiveKind::all_gather, DType::i64, 1LL << 33, 0, std::string(300, 'x'));
  const CollectiveInfo b = from_wire(to_wire(a));
  EXPECT_EQ(b.label, std::string(105, 'x'));
  EXPECT_TRUE(b.same_collective(from_wire(to_wire(b))));
  EXPECT_EQ(b.str(), from_wire(to_wire(b)).str());
  EXPECT_EQ(b.op_str(), "all_gather i64[8589934592] per rank");
}

TEST(CollectiveInfo, AMismatchNamesEachRanksCollective) {
  const auto bucket =
      info(57, CollectiveKind::all_reduce, DType::f32, 1000, 1, "gradient bucket 2 of 3");
  EXPECT_EQ(mismatch_line({bucket, bucket, bucket}), "");
  const auto bcast = info(57, CollectiveKind::broadcast, DType::f32, 10, 0);
  EXPECT_EQ(mismatch_line({bucket, bcast, bucket}),
            "ruche: collective #57 differs across ranks: ranks 0,2 all_reduce avg f32[1000] "
            "(gradient bucket 2 of 3), rank 1 broadcast f32[10] from rank 0; aborting the job");
  // A rank that skipped a bucket of the same size shows in the label.
  auto next = bucket;
  next.label = "gradient bucket 3 of 3";
  EXPECT_NE(
      mismatch_line({bucket, next}).find("rank 1 all_reduce avg f32[1000] (gradient bucket 3"),
      std::string::npos);
  // Numbers never differ in lockstep checks, but would be shown.
  next = bucket;
  next.seq = 58;
  EXPECT_NE(mismatch_line({bucket, next}).find("(gradient bucket 2 of 3, collective #58)"),
            std::string::npos);
}

// With the checks on, matching collectives run as usual on every rank.
TEST(CheckedCommunicator, MatchingCollectivesRun) {
  CommOptions options;
  options.timeout_seconds = 60;
  options.check_collectives = true;
  MpiCommunicator comm(world(), options);
  std::vector<float> x(100, 1.0f);
  Work a = comm.all_reduce({x.data(), DType::f32, 100, Device::cpu()}, ReduceOp::sum, "ones");
  Work b = comm.broadcast({x.data(), DType::f32, 10, Device::cpu()}, 0);
  comm.barrier("end").wait();
  a.wait();
  b.wait();
  for (float v : x) EXPECT_EQ(v, static_cast<float>(world().size()));
}

}  // namespace
}  // namespace ruche
