// The CUDA op table: filled by the ops/cuda units as they land; an empty slot is a clear error.
#include "ops/op_table.h"

namespace ruche::ops {

const OpTable* cuda_op_table() {
  static const OpTable table;
  return &table;
}

}  // namespace ruche::ops
