#include "engine/data/smote.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>

#include "engine/data/balance.h"
#include "engine/data/in_memory.h"
#include "engine/error.h"

namespace ruche {
namespace {

// Synthetic streams sit far above the balanced sampler's layers (2 + class).
constexpr std::uint32_t kSmoteLayer = 1u << 20;

float squared_distance(const float* a, const float* b, std::int64_t d) {
  float s = 0;
  for (std::int64_t i = 0; i < d; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

}  // namespace

DatasetPtr smote_balance(const Dataset& train, int k, std::uint64_t seed) {
  RUCHE_REQUIRE(k >= 1) << "--smote " << k << ": expected K >= 1 nearest neighbours";
  RUCHE_REQUIRE(train.sample_shape().ndim() == 1 && !train.transforms_itself())
      << "--smote: SMOTE interpolates feature vectors (npz x of shape [N, D]); these "
      << train.kind() << " samples are images " << train.sample_shape().str()
      << ", and a point between two images is no image of the class: use --balance over or "
      << "--class-weights auto";
  const std::int64_t n = train.size(), d = train.sample_numel();
  const int classes = train.num_classes();
  InMemoryData out;
  out.kind = train.kind();
  out.sample_shape = train.sample_shape();
  out.num_classes = classes;
  out.class_names = train.class_names();
  out.labels = dataset_labels(train);
  out.f32.resize(static_cast<std::size_t>(n * d));
  for (std::int64_t i = 0; i < n; ++i) train.read(i, out.f32.data() + i * d);

  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(classes));
  for (std::int64_t i = 0; i < n; ++i)
    by_class[static_cast<std::size_t>(out.labels[static_cast<std::size_t>(i)])].push_back(i);
  std::size_t largest = 0;
  for (const auto& members : by_class) largest = std::max(largest, members.size());

  std::vector<float> sample(static_cast<std::size_t>(d));
  for (int c = 0; c < classes; ++c) {
    const std::vector<std::int64_t>& members = by_class[static_cast<std::size_t>(c)];
    if (members.empty() || members.size() == largest) continue;
    RUCHE_REQUIRE(members.size() >= 2)
        << "--smote: class " << c << " has one training sample; SMOTE needs two to interpolate";
    const auto m = static_cast<std::int64_t>(members.size());
    const std::int64_t neighbours = std::min<std::int64_t>(k, m - 1);
    // Each member's nearest others in the class, nearest first (ties: lower index first).
    std::vector<std::int64_t> nearest(static_cast<std::size_t>(m * neighbours));
    std::vector<std::pair<float, std::int64_t>> by_distance;
    for (std::int64_t a = 0; a < m; ++a) {
      const float* xa = out.f32.data() + members[static_cast<std::size_t>(a)] * d;
      by_distance.clear();
      for (std::int64_t b = 0; b < m; ++b) {
        if (b == a) continue;
        by_distance.emplace_back(
            squared_distance(xa, out.f32.data() + members[static_cast<std::size_t>(b)] * d, d), b);
      }
      // cppcheck-suppress containerOutOfBounds ; neighbours <= m - 1, by_distance's size
      std::partial_sort(by_distance.begin(), by_distance.begin() + neighbours, by_distance.end());
      for (std::int64_t j = 0; j < neighbours; ++j)
        nearest[static_cast<std::size_t>(a * neighbours + j)] =
            by_distance[static_cast<std::size_t>(j)].second;
    }
    const std::int64_t missing = static_cast<std::int64_t>(largest) - m;
    for (std::int64_t s = 0; s < missing; ++s) {
      const RngStream stream{seed, RngPurpose::sampler, 0, static_cast<std::uint32_t>(s),
                             kSmoteLayer + static_cast<std::uint32_t>(c)};
      const std::int64_t a = s % m;
      const auto pick = std::min<std::int64_t>(
          neighbours - 1,
          static_cast<std::int64_t>(rng_uniform(stream, 0) * static_cast<float>(neighbours)));
      const std::int64_t b = nearest[static_cast<std::size_t>(a * neighbours + pick)];
      const float gap = rng_uniform(stream, 1);
      // Copies first: out.f32 grows below, which moves its storage.
      const float* xa = out.f32.data() + members[static_cast<std::size_t>(a)] * d;
      const float* xb = out.f32.data() + members[static_cast<std::size_t>(b)] * d;
      for (std::int64_t i = 0; i < d; ++i)
        sample[static_cast<std::size_t>(i)] = xa[i] + gap * (xb[i] - xa[i]);
      out.f32.insert(out.f32.end(), sample.begin(), sample.end());
      out.labels.push_back(c);
    }
  }
  return std::make_shared<InMemoryDataset>(std::move(out), "--smote");
}

}  // namespace ruche
