// The per-rank counts of the _v collectives (reduce_scatter_v, all_gather_v) as segments of one
// buffer: rank r's chunk starts where rank r - 1's ends. NCCL has no per-rank counts, so its
// communicator runs one rooted call per non-empty segment (comm/nccl); NCCL-free, so the
// arithmetic is tested on CPU ranks (tests/mpi/segments_test.cc).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/error.h"

namespace ruche {

struct Segment {
  int rank = 0;             // whose chunk: the reduce's root, the broadcast's source
  std::int64_t offset = 0;  // elements from the start of the buffer
  std::int64_t count = 0;   // elements, > 0
};

// The non-empty segments of `counts` in rank order. Every rank gets the same list from the same
// counts, so every rank skips the same empty chunks. A ruche::Error naming `op` when there is not
// one count per rank of a world of `size`, a count is negative, or they do not sum to `total`.
inline std::vector<Segment> segments_of(const std::vector<std::int64_t>& counts, int size,
                                        std::int64_t total, std::string_view op) {
  RUCHE_REQUIRE(static_cast<int>(counts.size()) == size)
      << op << ": " << counts.size() << " counts for a world of " << size;
  std::vector<Segment> segments;
  std::int64_t at = 0;
  for (int r = 0; r < size; ++r) {
    const std::int64_t c = counts[static_cast<std::size_t>(r)];
    RUCHE_REQUIRE(c >= 0) << op << ": rank " << r << "'s count is " << c;
    if (c > 0) segments.push_back({r, at, c});
    at += c;
  }
  RUCHE_REQUIRE(at == total) << op << ": counts sum to " << at << " elements, the buffer holds "
                             << total;
  return segments;
}

}  // namespace ruche
