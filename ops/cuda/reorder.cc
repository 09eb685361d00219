// reorder on CUDA: plain <-> nhwc (the layout plan of a 16-bit net), or a copy. It is cast's
// kernel (cast.cu) with the dtype kept, so one gather serves the activations and the weights.
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/kernel_util.h"

namespace ruche::ops::gpu {

void reorder(const Tensor& x, Tensor& y) {
  RUCHE_REQUIRE(x.defined() && y.defined() && x.dtype() == y.dtype())
      << "reorder: " << x.str() << " -> " << y.str() << " must keep the dtype (ops::cast casts)";
  check_shape_as(y, x, "reorder", "y", "x");
  cast(x, y);
}

}  // namespace ruche::ops::gpu
