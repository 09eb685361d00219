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

}  // namespace ruche
