// STUB: to be implemented
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dParams& p) {
  RUCHE_FAIL() << "max_pool2d_forward: not implemented yet";
}

void max_pool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx, const Pool2dParams& p) {
  RUCHE_FAIL() << "max_pool2d_backward: not implemented yet";
}

void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dParams& p) {
  RUCHE_FAIL() << "avg_pool2d_forward: not implemented yet";
}

void avg_pool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dParams& p) {
  RUCHE_FAIL() << "avg_pool2d_backward: not implemented yet";
}

void global_avg_pool_forward(const Tensor& x, Tensor& y) {
  RUCHE_FAIL() << "global_avg_pool_forward: not implemented yet";
}

void global_avg_pool_backward(const Tensor& dy, Tensor& dx) {
  RUCHE_FAIL() << "global_avg_pool_backward: not implemented yet";
}

}  // namespace ruche::ops::cpu
