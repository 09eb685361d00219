#include "engine/data/balance.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "engine/data/sampler.h"
#include "engine/error.h"

namespace ruche {

BalanceMode parse_balance_mode(const std::string& text) {
  if (text == "none" || text.empty()) return BalanceMode::none;
  if (text == "over") return BalanceMode::over;
  if (text == "under") return BalanceMode::under;
  RUCHE_FAIL() << "--balance " << text << ": expected none, over or under";
}

std::vector<std::int32_t> dataset_labels(const Dataset& d) {
  std::vector<std::int32_t> labels(static_cast<std::size_t>(d.size()));
  for (std::int64_t i = 0; i < d.size(); ++i) labels[static_cast<std::size_t>(i)] = d.label(i);
  return labels;
}

std::vector<std::int64_t> class_counts(const std::vector<std::int32_t>& labels, int classes) {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(classes), 0);
  for (std::int32_t y : labels) {
    RUCHE_CHECK(y >= 0 && y < classes) << "label " << y << " of " << classes << " classes";
    ++counts[static_cast<std::size_t>(y)];
  }
  return counts;
}

std::vector<std::int64_t> balanced_indices(const std::vector<std::int32_t>& labels, int classes,
                                           BalanceMode mode, const RngStream& stream) {
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(classes));
  for (std::size_t i = 0; i < labels.size(); ++i)
    by_class[static_cast<std::size_t>(labels[i])].push_back(static_cast<std::int64_t>(i));
  std::int64_t target = mode == BalanceMode::under ? INT64_MAX : 0;
  for (const auto& members : by_class) {
    if (members.empty()) continue;
    const auto n = static_cast<std::int64_t>(members.size());
    target = mode == BalanceMode::under ? std::min(target, n) : std::max(target, n);
  }
  std::vector<std::int64_t> out;
  for (std::size_t c = 0; c < by_class.size(); ++c) {
    std::vector<std::int64_t>& members = by_class[c];
    if (members.empty()) continue;
    const auto n = static_cast<std::int64_t>(members.size());
    const std::int64_t whole = mode == BalanceMode::none ? 1 : target / n;  // times each sample
    const std::int64_t extra = mode == BalanceMode::none ? 0 : target % n;  // drawn once more
    for (std::int64_t k = 0; k < whole; ++k) out.insert(out.end(), members.begin(), members.end());
    if (extra > 0) {
      // The extra ones without replacement: a shuffled class, cut (its own stream per class).
      RngStream s = stream;
      s.layer = 2 + static_cast<std::uint32_t>(c);
      shuffle_in_place(members, s);
      out.insert(out.end(), members.begin(), members.begin() + extra);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<float> balanced_class_weights(const std::vector<std::int32_t>& labels, int classes) {
  const std::vector<std::int64_t> counts = class_counts(labels, classes);
  std::vector<float> weights;
  for (int c = 0; c < classes; ++c) {
    const std::int64_t n = counts[static_cast<std::size_t>(c)];
    RUCHE_REQUIRE(n > 0) << "--class-weights auto: class " << c
                         << " has no training sample, so no finite weight";
    weights.push_back(static_cast<float>(static_cast<double>(labels.size()) /
                                         (static_cast<double>(classes) * static_cast<double>(n))));
  }
  return weights;
}

std::vector<float> parse_class_weights(const std::string& text, int classes,
                                       const std::vector<std::int32_t>& train_labels) {
  if (text == "auto") return balanced_class_weights(train_labels, classes);
  std::vector<float> weights;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string part = text.substr(pos, comma - pos);
    char* end = nullptr;
    const float w = std::strtof(part.c_str(), &end);
    RUCHE_REQUIRE(!part.empty() && *end == '\0' && std::isfinite(w) && w > 0)
        << "--class-weights " << text << ": '" << part
        << "' is not a positive number (expected auto or w0,w1,...)";
    weights.push_back(w);
    pos = comma + 1;
  }
  RUCHE_REQUIRE(static_cast<int>(weights.size()) == classes)
      << "--class-weights " << text << ": " << weights.size() << " weights for " << classes
      << " classes";
  return weights;
}

}  // namespace ruche
