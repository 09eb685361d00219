// A .npy array (weights, test references, npz members) parsed from memory.
#include "engine/tensor/npy.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(npy) {
  const ruche::Tensor t =
      ruche::parse_npy(std::string(reinterpret_cast<const char*>(data), size), "fuzz.npy");
  ruche::to_npy(t);
}
