// How the ranks of an NCCL communicator agree on its id: rank 0 makes an ncclUniqueId and the
// host (MPI) communicator broadcasts its bytes. NCCL-free, so it is tested on CPU ranks.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "comm/communicator.h"

namespace ruche {

// The bytes of an ncclUniqueId (NCCL_UNIQUE_ID_BYTES; checked where nccl.h is seen).
using NcclIdBytes = std::array<std::uint8_t, 128>;

// Rank 0's `id` on every rank of `host`, a communicator of host buffers; blocks until it arrived
// (under host's watchdog). What other ranks pass is ignored.
NcclIdBytes share_from_rank0(Communicator& host, const NcclIdBytes& id, std::string_view label);

}  // namespace ruche
