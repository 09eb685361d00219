// DataParallel's guards under mpirun: a rank given another net is named at start, rank 0's
// weights reach every rank, and the in-sync check catches replicas that drifted apart (the
// end-to-end training equalities are in tests/dp/data_parallel.py).
#include "engine/train/data_parallel.h"

#include <gtest/gtest.h>

#include "comm/mpi/mpi_communicator.h"
#include "tests/mpi/mpi_env.h"

namespace ruche {
namespace {

using testing::world;

constexpr const char* kNet = R"(
layer { name: "input" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "c1" top: "b1" }
layer { name: "fc" type: "InnerProduct" bottom: "b1" top: "logits"
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "label" top: "loss" }
)";

std::unique_ptr<Net> tiny_net(std::uint64_t seed) {
  NetSource source;
  NetOptions options;
  options.batch_size = 2;
  options.sample_shape = {1, 4, 4};
  options.num_classes = 3;
  auto net = Net::build(parse_net(kNet, "tiny.prototxt", &source), options);
  net->init_params(seed);
  return net;
}

TEST(DataParallel, StartGivesEveryRankRankZerosState) {
  MpiCommunicator comm(world());
  auto net = tiny_net(100 + static_cast<std::uint64_t>(world().rank()));  // different on each
  net->buffers().data<float>()[0] = static_cast<float>(world().rank());
  DataParallel dp(&comm, *net, {});
  dp.start("same everywhere");
  const auto reference = tiny_net(100);
  const float* p = net->params().data<float>();
  const float* q = reference->params().data<float>();
  for (std::int64_t i = 0; i < net->params().numel(); ++i) ASSERT_EQ(p[i], q[i]) << i;
  EXPECT_EQ(net->buffers().data<float>()[0], 0.0f);
  EXPECT_NO_THROW(dp.check_in_sync(0));
}

TEST(DataParallel, InSyncCheckCatchesADriftedRank) {
  if (world().size() < 2) GTEST_SKIP() << "needs 2 ranks";
  MpiCommunicator comm(world());
  auto net = tiny_net(5);
  DataParallel dp(&comm, *net, {});
  dp.start("same everywhere");
  if (world().rank() == world().size() - 1) net->params().data<float>()[3] += 1e-6f;
  try {
    dp.check_in_sync(42);
    FAIL() << "the drifted rank was not caught";
  } catch (const InternalError& e) {
    const std::string expected =
        "rank " + std::to_string(world().size() - 1) + "'s parameters differ from rank 0's";
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

TEST(DataParallel, ARankWithAnotherNetIsNamed) {
  if (world().size() < 2) GTEST_SKIP() << "needs 2 ranks";
  MpiCommunicator comm(world());
  auto net = tiny_net(5);
  DataParallel dp(&comm, *net, {});
  const std::string identity = world().rank() == 1 ? "lr 0.1" : "lr 0.2";
  try {
    dp.start(identity);
    FAIL() << "rank 1's other solver was not caught";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 built a different net or solver than rank 0"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ruche
