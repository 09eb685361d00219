// The CPU implementations of every op in ops.h, same signatures, in ruche::ops::cpu.
#pragma once

#include "ops/op_table.h"

namespace ruche::ops::cpu {

#define RUCHE_CPU_OP_DECL(name, params, args, tensors) void name params;
RUCHE_OPS(RUCHE_CPU_OP_DECL)
#undef RUCHE_CPU_OP_DECL

}  // namespace ruche::ops::cpu
