// An .npz archive (model.npz, --init-weights, npz datasets): the directory, then every member.
#include "engine/tensor/npz.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(npz) {
  const ruche::fuzz::TempFile file(data, size, ".npz");
  ruche::list_npz(file.path());
  ruche::load_npz(file.path());
}
