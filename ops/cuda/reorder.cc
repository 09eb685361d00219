// reorder on CUDA: the layout planner keeps CUDA nets plain, so this is a copy between plain
// tensors (a blocked one never reaches a GPU).
#include "ops/cuda/cuda_ops.h"

namespace ruche::ops::gpu {

void reorder(const Tensor& x, Tensor& y) {
  RUCHE_REQUIRE(x.is_plain() && y.is_plain())
      << "reorder: blocked layouts are CPU-only, got " << x.str() << " -> " << y.str();
  y.copy_from(x);
}

}  // namespace ruche::ops::gpu
