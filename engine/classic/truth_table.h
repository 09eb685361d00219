// The four points of a two-input truth table, the data of the course's first networks.
#pragma once

#include <string>

#include "engine/tensor/tensor.h"

namespace ruche::classic {

enum class Gate { AND, OR, XOR };

std::string gate_name(Gate gate);
// x: [4, 2] with rows (0,0) (0,1) (1,0) (1,1); y: [4, 1] with the gate's outputs.
Tensor truth_table_inputs();
Tensor truth_table_targets(Gate gate);

}  // namespace ruche::classic
