#include "comm/zero_plan.h"

#include <algorithm>
#include <cstdlib>

#include "engine/error.h"

namespace ruche {

std::vector<GradRange> plan_zero_ranges(std::vector<GradRange> tensors, int world) {
  RUCHE_REQUIRE(world > 0) << "ZeRO ranges for a world of " << world << " ranks";
  std::sort(tensors.begin(), tensors.end(),
            [](const GradRange& a, const GradRange& b) { return a.begin < b.begin; });
  std::vector<std::int64_t> boundaries{0};  // where a tensor may be cut: 0, ends of tensors
  for (const GradRange& t : tensors) {
    RUCHE_CHECK(t.begin == boundaries.back() && t.end > t.begin)
        << "ZeRO ranges: tensors must tile the buffer: [" << t.begin << ", " << t.end << ") after "
        << boundaries.back();
    boundaries.push_back(t.end);
  }
  const std::int64_t total = boundaries.back();
  std::vector<GradRange> ranks;
  std::size_t at = 0;  // index of the last cut in boundaries
  for (int k = 1; k <= world; ++k) {
    std::size_t cut = boundaries.size() - 1;
    if (k < world) {
      const auto ideal = static_cast<std::int64_t>(static_cast<__int128>(total) * k / world);
      cut = at;
      while (cut + 1 < boundaries.size() &&
             std::llabs(boundaries[cut + 1] - ideal) < std::llabs(boundaries[cut] - ideal)) {
        ++cut;
      }
    }
    ranks.push_back({boundaries[at], boundaries[cut]});
    at = cut;
  }
  return ranks;
}

std::vector<std::int64_t> counts_within(const std::vector<GradRange>& ranks, GradRange span) {
  std::vector<std::int64_t> counts;
  counts.reserve(ranks.size());
  for (const GradRange& r : ranks) {
    counts.push_back(
        std::max<std::int64_t>(0, std::min(r.end, span.end) - std::max(r.begin, span.begin)));
  }
  return counts;
}

}  // namespace ruche
