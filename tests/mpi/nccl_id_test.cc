// The NCCL id exchange (comm/nccl/unique_id): rank 0's bytes arrive intact on every rank.
// NCCL-free, so it runs on CPU ranks.
#include <gtest/gtest.h>

#include "comm/mpi/mpi_communicator.h"
#include "comm/nccl/unique_id.h"
#include "tests/mpi/mpi_env.h"

namespace ruche {
namespace {

using testing::world;

NcclIdBytes pattern(int seed) {
  NcclIdBytes bytes;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<std::uint8_t>(i * 37 + static_cast<std::size_t>(seed) * 101 + 11);
  }
  return bytes;
}

TEST(NcclUniqueId, RankZerosBytesArriveIntactOnEveryRank) {
  MpiCommunicator comm(world());
  for (int seed : {1, 2}) {  // twice: the second id is not the first one left over
    NcclIdBytes mine;
    mine.fill(static_cast<std::uint8_t>(0xA0 + world().rank()));  // what rank 0 must overwrite
    if (world().rank() == 0) mine = pattern(seed);
    const NcclIdBytes got = share_from_rank0(comm, mine, "the NCCL unique id");
    EXPECT_EQ(got, pattern(seed)) << "rank " << world().rank() << ", id " << seed;
  }
}

}  // namespace
}  // namespace ruche
