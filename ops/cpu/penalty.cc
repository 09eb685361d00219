// STUB: to be implemented
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void l1_penalty_forward(const Tensor& w, float coeff, Tensor& loss) {
  RUCHE_FAIL() << "l1_penalty_forward: not implemented yet";
}

void l1_penalty_backward(const Tensor& w, float coeff, Tensor& dw) {
  RUCHE_FAIL() << "l1_penalty_backward: not implemented yet";
}

void l2_penalty_forward(const Tensor& w, float coeff, Tensor& loss) {
  RUCHE_FAIL() << "l2_penalty_forward: not implemented yet";
}

void l2_penalty_backward(const Tensor& w, float coeff, Tensor& dw) {
  RUCHE_FAIL() << "l2_penalty_backward: not implemented yet";
}

}  // namespace ruche::ops::cpu
