#include "engine/optim/param_table.h"

#include <algorithm>

#include "engine/error.h"

namespace ruche {
namespace {

bool is_bias_or_norm(ParamRole role) {
  return role == ParamRole::bias || role == ParamRole::norm_weight || role == ParamRole::norm_bias;
}

}  // namespace

std::vector<ParamRange> build_param_ranges(const std::vector<ParamEntry>& table,
                                           std::int64_t num_trainable, bool no_decay_bn_bias) {
  std::vector<ParamRange> ranges;
  for (std::size_t i = 0; i < table.size(); ++i) {
    const ParamEntry& e = table[i];
    if (e.frozen || e.role == ParamRole::buffer || e.count == 0) continue;
    RUCHE_REQUIRE(e.offset >= 0 && e.count > 0 && e.offset + e.count <= num_trainable)
        << "optimizer: parameter '" << e.name << "' at [" << e.offset << ", " << e.offset + e.count
        << ") lies outside the " << num_trainable << " trainable elements of the gradient buffer";
    ParamRange r;
    r.begin = e.offset;
    r.end = e.offset + e.count;
    r.lr_mult = e.lr_mult;
    r.decay_mult = no_decay_bn_bias && is_bias_or_norm(e.role) ? 0.0f : e.decay_mult;
    r.adapt = !is_bias_or_norm(e.role);
    r.entry = static_cast<int>(i);
    ranges.push_back(r);
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const ParamRange& a, const ParamRange& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    RUCHE_REQUIRE(ranges[i].begin >= ranges[i - 1].end)
        << "optimizer: parameters '" << table[ranges[i - 1].entry].name << "' and '"
        << table[ranges[i].entry].name << "' overlap in the flat buffer";
  }
  return ranges;
}

}  // namespace ruche
