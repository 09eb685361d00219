#include "comm/world.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "comm/mpi/mpi_communicator.h"
#include "tests/mpi/mpi_env.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::error_of;
using testing::world;

// Every rank's value of x, in rank order.
std::vector<std::int32_t> gather(Communicator& comm, std::int32_t x) {
  std::vector<std::int32_t> all(static_cast<std::size_t>(comm.size()));
  comm.all_gather({&x, DType::i32, 1, Device::cpu()},
                  {all.data(), DType::i32, comm.size(), Device::cpu()})
      .wait();
  return all;
}

TEST(World, RankAndSize) {
  const World& w = world();
  ASSERT_GE(w.size(), 1);
  ASSERT_GE(w.rank(), 0);
  ASSERT_LT(w.rank(), w.size());
  MpiCommunicator comm(w);
  EXPECT_EQ(comm.rank(), w.rank());
  EXPECT_EQ(comm.size(), w.size());
  std::vector<std::int32_t> ranks = gather(comm, w.rank());
  for (int r = 0; r < w.size(); ++r) EXPECT_EQ(ranks[r], r);
}

TEST(World, ThreadLevelAtLeastSerialized) {
  // MPI_THREAD_SINGLE < FUNNELED < SERIALIZED < MULTIPLE; Debian's Open MPI gives MULTIPLE.
  EXPECT_GE(world().thread_level(), 2);
}

// Each node's ranks have local ranks 0..local_size-1 and agree on local_size; the local sizes
// of the nodes add up to the world size.
TEST(World, LocalRanksPartitionTheWorld) {
  const World& w = world();
  ASSERT_GE(w.local_rank(), 0);
  ASSERT_LT(w.local_rank(), w.local_size());
  MpiCommunicator comm(w);
  std::vector<std::int32_t> node = gather(comm, w.node());
  std::vector<std::int32_t> local_rank = gather(comm, w.local_rank());
  std::vector<std::int32_t> local_size = gather(comm, w.local_size());
  std::map<int, std::set<int>> local_ranks_of_node;
  std::map<int, int> size_of_node;
  int leaders_total = 0;
  for (int r = 0; r < w.size(); ++r) {
    ASSERT_GE(node[r], 0);
    ASSERT_LT(node[r], w.num_nodes());
    local_ranks_of_node[node[r]].insert(local_rank[r]);
    auto [it, first] = size_of_node.emplace(node[r], local_size[r]);
    EXPECT_TRUE(first || it->second == local_size[r]) << "rank " << r;
    if (local_rank[r] == 0) leaders_total += local_size[r];
  }
  EXPECT_EQ(leaders_total, w.size());
  EXPECT_EQ(static_cast<int>(local_ranks_of_node.size()), w.num_nodes());
  for (const auto& [n, locals] : local_ranks_of_node) {
    EXPECT_EQ(static_cast<int>(locals.size()), size_of_node[n]) << "node " << n;
    EXPECT_EQ(*locals.begin(), 0) << "node " << n;
    EXPECT_EQ(*locals.rbegin(), size_of_node[n] - 1) << "node " << n;
  }
}

// On this machine every rank shares memory: one node, unless RUCHE_FAKE_NODES splits it, or the
// ranks run in RUCHE_TEST_HOSTS=K network-namespace hosts (tests/support/netns_hosts.sh; the test
// runs them K x size/K): then the nodes are those hosts, told apart by MPI_Comm_split_type.
TEST(World, NodesRealOrPretend) {
  const World& w = world();
  const int fake = WorldOptions::from_env().fake_nodes;
  const char* hosts = std::getenv("RUCHE_TEST_HOSTS");
  if (hosts != nullptr && fake == 0) {
    const int k = std::atoi(hosts);
    ASSERT_GT(k, 0) << "RUCHE_TEST_HOSTS=" << hosts;
    EXPECT_EQ(w.num_nodes(), k);
    EXPECT_EQ(w.local_size(), w.size() / k);
    EXPECT_EQ(w.node(), w.rank() / (w.size() / k));  // mpirun fills each host's slots in turn
    // Ranks of one node share a host name; ranks of different nodes do not.
    MpiCommunicator comm(w);
    const std::vector<std::int32_t> node = gather(comm, w.node());
    const std::vector<std::string>& names = w.host_names();
    for (std::size_t a = 0; a < node.size(); ++a) {
      for (std::size_t b = 0; b < node.size(); ++b) {
        EXPECT_EQ(node[a] == node[b], names[a] == names[b])
            << "ranks " << a << " and " << b << " on " << names[a] << " and " << names[b];
      }
    }
  } else if (fake > 0) {
    EXPECT_EQ(w.num_nodes(), fake);
    EXPECT_EQ(w.node(), fake_node_of(w.rank(), w.size(), fake));
  } else {
    EXPECT_EQ(w.num_nodes(), 1);
    EXPECT_EQ(w.node(), 0);
    EXPECT_EQ(w.local_size(), w.size());
    EXPECT_EQ(w.local_rank(), w.rank());
  }
}

TEST(World, HostNames) {
  const World& w = world();
  ASSERT_EQ(static_cast<int>(w.host_names().size()), w.size());
  EXPECT_FALSE(w.host_name().empty());
  EXPECT_EQ(w.host_name(), w.host_names()[static_cast<std::size_t>(w.rank())]);
}

TEST(World, FakeNodeOfSplitsConsecutiveRanks) {
  EXPECT_EQ(fake_node_of(0, 4, 2), 0);
  EXPECT_EQ(fake_node_of(1, 4, 2), 0);
  EXPECT_EQ(fake_node_of(2, 4, 2), 1);
  EXPECT_EQ(fake_node_of(3, 4, 2), 1);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(fake_node_of(r, 3, 3), r);
  EXPECT_EQ(fake_node_of(2, 3, 1), 0);
  EXPECT_NE(error_of([] { fake_node_of(0, 2, 3); }).find("RUCHE_FAKE_NODES=3"), std::string::npos);
  EXPECT_NE(error_of([] { fake_node_of(0, 2, 0); }), "");
}

// Threads per rank: unbound ranks (every mask the whole host) share its cores; ranks that mpirun
// bound to cores of their own keep theirs; partial overlaps count as sharing.
TEST(World, CoreShareFollowsTheAffinityMasks) {
  const CpuMask all{0xFull};  // cores 0-3
  CoreShare s = share_cores({all, all}, 0);
  EXPECT_EQ(s.cores, 4);
  EXPECT_EQ(s.sharing, 2);
  EXPECT_EQ(s.threads(), 2);
  s = share_cores({CpuMask{0x3}, CpuMask{0xC}}, 1);  // bound: two cores each
  EXPECT_EQ(s.cores, 2);
  EXPECT_EQ(s.sharing, 1);
  EXPECT_EQ(s.threads(), 2);
  s = share_cores({all, all, all, all, all, all}, 3);  // more ranks than cores: at least 1
  EXPECT_EQ(s.threads(), 1);
  s = share_cores({CpuMask{0x1}, CpuMask{0x3}, CpuMask{0xC}}, 1);
  EXPECT_EQ(s.sharing, 2);
  EXPECT_EQ(s.threads(), 1);
  EXPECT_EQ(share_cores({CpuMask{0, 0x1}}, 0).cores, 1);  // core 64
}

// The World's own share: this rank's mask, shared by the ranks of this host that overlap it.
TEST(World, CoreShareOfThisRank) {
  const World& w = world();
  const CoreShare& s = w.core_share();
  EXPECT_GE(s.cores, 1);
  EXPECT_GE(s.sharing, 1);
  EXPECT_LE(s.sharing, w.size());
  EXPECT_GE(s.threads(), 1);
}

TEST(World, FakeNodesFromEnvRejectsNonsense) {
  const char* saved = std::getenv("RUCHE_FAKE_NODES");
  std::string old = saved ? saved : "";
  ::setenv("RUCHE_FAKE_NODES", "two", 1);
  EXPECT_NE(error_of([] { WorldOptions::from_env(); }).find("'two'"), std::string::npos);
  ::setenv("RUCHE_FAKE_NODES", "-1", 1);
  EXPECT_NE(error_of([] { WorldOptions::from_env(); }), "");
  ::setenv("RUCHE_FAKE_NODES", "4", 1);
  EXPECT_EQ(WorldOptions::from_env().fake_nodes, 4);
  if (saved) {
    ::setenv("RUCHE_FAKE_NODES", old.c_str(), 1);
  } else {
    ::unsetenv("RUCHE_FAKE_NODES");
  }
}

}  // namespace
}  // namespace ruche
