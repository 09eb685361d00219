#include "engine/tensor/device.h"

#include <cstdlib>

#include "engine/error.h"

namespace ruche {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    char* end = nullptr;
    long index = std::strtol(text.c_str() + 5, &end, 10);
    if (end && *end == '\0' && end != text.c_str() + 5 && index >= 0) {
      return cuda(static_cast<int>(index));
    }
  }
  RUCHE_FAIL() << "unknown device '" << text << "' (expected cpu, cuda or cuda:N)";
}

int local_gpu(int visible_gpus, int local_rank, int local_size) {
  RUCHE_CHECK(visible_gpus > 0 && local_rank >= 0 && local_rank < local_size)
      << "local_gpu(" << visible_gpus << ", " << local_rank << ", " << local_size << ")";
  if (visible_gpus == 1) return 0;  // the launcher gave each rank its own (CUDA_VISIBLE_DEVICES)
  RUCHE_REQUIRE(local_size <= visible_gpus)
      << "--device cuda: " << local_size << " ranks on this node but " << visible_gpus
      << " visible GPUs; start at most one rank per GPU (NCCL refuses two ranks on one GPU)";
  return local_rank;
}

}  // namespace ruche
