// The CUDA op table: every op of ops/cuda/cuda_ops.h.
#include "ops/cuda/cuda_ops.h"
#include "ops/op_table.h"

namespace ruche::ops {

const OpTable* cuda_op_table() {
  static const OpTable table = [] {
    OpTable t;
#define RUCHE_CUDA_OP_FILL(name, params, args, tensors) t.name = &gpu::name;
    RUCHE_OPS(RUCHE_CUDA_OP_FILL)
#undef RUCHE_CUDA_OP_FILL
    return t;
  }();
  return &table;
}

}  // namespace ruche::ops
