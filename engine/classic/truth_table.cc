#include "engine/classic/truth_table.h"

namespace ruche::classic {

std::string gate_name(Gate gate) {
  switch (gate) {
    case Gate::AND:
      return "AND";
    case Gate::OR:
      return "OR";
    case Gate::XOR:
      return "XOR";
  }
  return "?";
}

Tensor truth_table_inputs() { return Tensor::from_vector({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2}); }

Tensor truth_table_targets(Gate gate) {
  switch (gate) {
    case Gate::AND:
      return Tensor::from_vector({0, 0, 0, 1}, {4, 1});
    case Gate::OR:
      return Tensor::from_vector({0, 1, 1, 1}, {4, 1});
    case Gate::XOR:
      return Tensor::from_vector({0, 1, 1, 0}, {4, 1});
  }
  RUCHE_FAIL() << "unknown gate";
}

}  // namespace ruche::classic
