// sync_bn_test's main: one World for every test (MPI initializes once per process).
#include <gtest/gtest.h>

#include "comm/world.h"
#include "tests/sync_bn/sync_bn_env.h"

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
