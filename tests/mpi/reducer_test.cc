#include "comm/reducer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/mpi/mpi_communicator.h"
#include "tests/mpi/mpi_env.h"

namespace ruche {
namespace {

using testing::world;

// Records the collectives it is asked for and completes them at once (no peers).
class RecordingCommunicator final : public Communicator {
 public:
  struct Done final : WorkImpl {
    bool test() override { return true; }
    void wait() override {}
  };
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::vector<void*> launched;
  std::vector<std::string> labels;
  int open_groups = 0, groups = 0;
  std::size_t fail_at = SIZE_MAX;  // the all_reduce with this index throws

 protected:
  Work do_all_reduce(BufferView buffer, ReduceOp, std::string_view label) override {
    if (launched.size() == fail_at) throw Error("injected launch failure");
    launched.push_back(buffer.data);
    labels.emplace_back(label);
    return Work(std::make_shared<Done>());
  }
  Work do_broadcast(BufferView, int, std::string_view) override {
    return Work(std::make_shared<Done>());
  }
  Work do_all_gather(BufferView, BufferView, std::string_view) override {
    return Work(std::make_shared<Done>());
  }
  Work do_reduce_scatter(BufferView, BufferView, ReduceOp, std::string_view) override {
    return Work(std::make_shared<Done>());
  }
  Work do_barrier(std::string_view) override { return Work(std::make_shared<Done>()); }
  void do_begin_group() override {
    ++open_groups;
    ++groups;
  }
  void do_end_group() override { --open_groups; }
};

// Tensors of 100, 300, 50, 600 and 200 floats, tiling [0, 1250).
std::vector<GradRange> layout() {
  std::vector<GradRange> t;
  std::int64_t at = 0;
  for (std::int64_t n : {100, 300, 50, 600, 200}) {
    t.push_back({at, at + n});
    at += n;
  }
  return t;
}

TEST(Reducer, BucketsAreCutAtTensorBoundariesWithASmallFirstOne) {
  ReducerOptions o;
  o.first_bucket_bytes = 1000;  // 250 floats
  o.bucket_bytes = 2000;        // 500 floats
  const auto buckets = plan_buckets(layout(), DType::f32, o);
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0], (GradRange{0, 400}));     // 100 + 300 reaches the first cap
  EXPECT_EQ(buckets[1], (GradRange{400, 1050}));  // 50 + 600
  EXPECT_EQ(buckets[2], (GradRange{1050, 1250}));
  o.bucket_bytes = o.first_bucket_bytes = 4;  // one tensor per bucket
  EXPECT_EQ(plan_buckets(layout(), DType::f32, o).size(), 5u);
  o.bucket_bytes = o.first_bucket_bytes = 1 << 30;  // one bucket
  EXPECT_EQ(plan_buckets(layout(), DType::f32, o).size(), 1u);
}

TEST(Reducer, LaunchesStrictlyInOrderAsSoonAsEachBucketIsComplete) {
  RecordingCommunicator comm;
  Tensor grads = Tensor::zeros({1250});
  ReducerOptions o;
  o.first_bucket_bytes = o.bucket_bytes = 4;  // one tensor per bucket
  Reducer reducer(comm, grads, layout(), o);
  const float* base = grads.data<float>();
  reducer.mark_ready(450, 1050);  // bucket 3 is complete but buckets 0-2 are not launched
  EXPECT_TRUE(comm.launched.empty());
  reducer.mark_ready(0, 100);
  ASSERT_EQ(comm.launched.size(), 1u);
  EXPECT_EQ(comm.launched[0], base);
  reducer.mark_ready(100, 450);  // completes 1 and 2, which releases 3
  ASSERT_EQ(comm.launched.size(), 4u);
  EXPECT_EQ(comm.launched[3], base + 450);
  EXPECT_EQ(comm.labels[3], "gradient bucket 4 of 5 (elements [450, 1050))");
  // The last bucket never became ready: a bug, named.
  try {
    reducer.finish();
    ADD_FAILURE() << "finish() with a bucket never ready did not throw";
  } catch (const InternalError& e) {
    EXPECT_NE(std::string(e.what()).find("gradient bucket 5 of 5"), std::string::npos) << e.what();
  }
  reducer.mark_ready(1050, 1250);
  reducer.finish();
  EXPECT_EQ(comm.launched.size(), 5u);
  // finish() resets: the next step starts again from bucket 0.
  reducer.mark_ready(0, 1250);
  EXPECT_EQ(comm.launched.size(), 10u);
  reducer.finish();
}

// Buckets ready together go as one group, and a launch that throws inside it still ends the
// group: an open NCCL group would defer every later collective of the rank until the watchdog.
TEST(Reducer, EndsTheGroupOfReadyBucketsAlsoWhenALaunchThrows) {
  RecordingCommunicator comm;
  Tensor grads = Tensor::zeros({1250});
  ReducerOptions o;
  o.first_bucket_bytes = o.bucket_bytes = 4;  // one tensor per bucket
  Reducer reducer(comm, grads, layout(), o);
  reducer.mark_ready(0, 100);  // one bucket: no group
  EXPECT_EQ(comm.groups, 0);
  comm.fail_at = 2;  // bucket 1 launches, bucket 2 throws
  EXPECT_THROW(reducer.mark_ready(100, 1050), Error);
  EXPECT_EQ(comm.groups, 1);
  EXPECT_EQ(comm.open_groups, 0) << "the group was left open";
  EXPECT_EQ(comm.launched.size(), 2u);
}

TEST(CommGroup, EndsOnceWhetherEndedByHandOrByScope) {
  RecordingCommunicator comm;
  {
    CommGroup group(comm);
    EXPECT_EQ(comm.open_groups, 1);
    group.end();
    EXPECT_EQ(comm.open_groups, 0);
  }
  EXPECT_EQ(comm.open_groups, 0) << "ended twice";
  { CommGroup none(comm, false); }
  EXPECT_EQ(comm.groups, 1);
}

// Every rank ends with the average; with 1 or 2 ranks bit for bit whatever the bucket sizes.
TEST(Reducer, AveragesTheGradientsAcrossRanks) {
  MpiCommunicator comm(world());
  const int size = comm.size(), rank = comm.rank();
  std::vector<float> reference;
  for (std::int64_t cap : {4, 1000, 1 << 30}) {
    Tensor grads = Tensor::empty({1250});
    float* g = grads.data<float>();
    for (int i = 0; i < 1250; ++i) g[i] = std::sin(0.1f * i + rank) * static_cast<float>(rank + 1);
    ReducerOptions o;
    o.first_bucket_bytes = o.bucket_bytes = cap;
    Reducer reducer(comm, grads, layout(), o);
    // Backward marks the front of the buffer first (the last layer's gradients).
    for (const GradRange& t : layout()) reducer.mark_ready(t.begin, t.end);
    reducer.finish();
    for (int i = 0; i < 1250; i += 97) {
      double expected = 0;
      for (int r = 0; r < size; ++r) expected += std::sin(0.1f * i + r) * static_cast<float>(r + 1);
      expected /= size;
      EXPECT_NEAR(g[i], expected, 1e-5) << "element " << i << " with buckets of " << cap << " B";
    }
    const auto now = grads.to_vector();
    if (reference.empty()) {
      reference = now;
    } else if (size <= 2) {
      EXPECT_EQ(now, reference) << "bucket size " << cap << " changed the bits";
    }
  }
}

}  // namespace
}  // namespace ruche
