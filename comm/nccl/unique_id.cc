#include "comm/nccl/unique_id.h"

namespace ruche {

NcclIdBytes share_from_rank0(Communicator& host, const NcclIdBytes& id, std::string_view label) {
  NcclIdBytes bytes = id;
  host.broadcast({bytes.data(), DType::u8, static_cast<std::int64_t>(bytes.size()), Device::cpu()},
                 0, label)
      .wait();
  return bytes;
}

}  // namespace ruche
