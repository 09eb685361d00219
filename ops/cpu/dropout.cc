// STUB: to be implemented
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, float p, const RngStream& stream) {
  RUCHE_FAIL() << "dropout_forward: not implemented yet";
}

void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, float p) {
  RUCHE_FAIL() << "dropout_backward: not implemented yet";
}

}  // namespace ruche::ops::cpu
