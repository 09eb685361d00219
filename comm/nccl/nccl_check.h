// NCCL_CHECK(call): throws ruche::InternalError naming the call, file, line and NCCL's message.
// Included only by comm/nccl (the one place, with ops/cuda, that sees CUDA headers).
#pragma once

#include <nccl.h>

#include "engine/error.h"

#define NCCL_CHECK(call)                                                                         \
  do {                                                                                           \
    const ncclResult_t ruche_nccl_status_ = (call);                                              \
    if (ruche_nccl_status_ != ncclSuccess) {                                                     \
      ::ruche::detail::Thrower<::ruche::InternalError>("NCCL call failed: " #call, __FILE__,     \
                                                       __LINE__)                                 \
          << ncclGetErrorString(ruche_nccl_status_) << " (" << ncclGetLastError(nullptr) << ")"; \
    }                                                                                            \
  } while (0)
