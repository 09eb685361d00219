// A CIFAR binary batch, read as CIFAR-10 and as CIFAR-100.
#include "engine/data/cifar.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(cifar) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  for (ruche::CifarKind kind : {ruche::CifarKind::cifar10, ruche::CifarKind::cifar100}) {
    std::vector<std::uint8_t> pixels;
    std::vector<std::int32_t> labels;
    try {
      ruche::parse_cifar_batch(bytes, kind, "data_batch_1.bin", &pixels, &labels);
    } catch (const ruche::Error&) {
    }
  }
}
