// The main of the MPI test executables (comm_test, sync_bn_test): one World for every test,
// finalized after the last one.
#include <gtest/gtest.h>

#include "comm/world.h"
#include "tests/mpi/mpi_env.h"

namespace ruche::testing {
namespace {
const World* the_world = nullptr;
}  // namespace

const World& world() { return *the_world; }

}  // namespace ruche::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ruche::World world;
  ruche::testing::the_world = &world;
  return RUN_ALL_TESTS();
}
