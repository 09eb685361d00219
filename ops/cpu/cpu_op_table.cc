#include "ops/cpu/cpu_ops.h"

namespace ruche::ops {

const OpTable& cpu_op_table() {
  static const OpTable table = [] {
    OpTable t;
#define RUCHE_CPU_OP_FILL(name, params, args, tensors) t.name = &cpu::name;
    RUCHE_OPS(RUCHE_CPU_OP_FILL)
#undef RUCHE_CPU_OP_FILL
    return t;
  }();
  return table;
}

}  // namespace ruche::ops
