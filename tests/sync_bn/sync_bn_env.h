// The one World of a sync_bn_test process, made by main.cc.
#pragma once

#include "comm/world.h"

namespace ruche::testing {

const World& world();

}  // namespace ruche::testing
