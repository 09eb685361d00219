// One factory per layer kind; each is defined in that kind's file under engine/layers/.
#pragma once

#include <memory>

#include "engine/layers/layer.h"

namespace ruche {

}  // namespace ruche
