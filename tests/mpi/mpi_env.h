// The one World of a comm_test process (MPI initializes once per process), made by main.cc.
#pragma once

#include "comm/world.h"

namespace ruche::testing {

const World& world();

}  // namespace ruche::testing
