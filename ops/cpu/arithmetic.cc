// STUB: to be implemented
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void add(const Tensor& a, const Tensor& b, Tensor& y) {
  RUCHE_FAIL() << "add: not implemented yet";
}

void axpy(float alpha, const Tensor& x, Tensor& y) {
  RUCHE_FAIL() << "axpy: not implemented yet";
}

void scale(float alpha, Tensor& x) {
  RUCHE_FAIL() << "scale: not implemented yet";
}

}  // namespace ruche::ops::cpu
