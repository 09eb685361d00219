// An IDX file (MNIST / Fashion-MNIST images and labels), plain or gzip: read as 3-d images and as
// 1-d labels. What it returns must hold as many bytes as its dimensions say.
#include <stdexcept>

#include "engine/data/idx.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(idx) {
  const ruche::fuzz::TempFile file(data, size);
  for (int ndim : {3, 1}) {
    try {
      const ruche::IdxArray a = ruche::read_idx_file(file.path(), ndim);
      unsigned __int128 count = 1;
      for (const std::int64_t d : a.dims) count *= static_cast<unsigned __int128>(d);
      if (count != a.data.size()) throw std::logic_error("idx: dims do not match the data");
    } catch (const ruche::Error&) {
    }
  }
}
