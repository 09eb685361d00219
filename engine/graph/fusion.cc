#include "engine/graph/fusion.h"

#include <algorithm>
#include <map>

namespace ruche {
namespace {

// The plain ReLU (no negative slope) that writes its one bottom in place.
bool in_place_relu(const proto::LayerParameter& lp) {
  return lp.type() == "ReLU" && lp.relu_param().negative_slope() == 0.0f && lp.bottom_size() == 1 &&
         lp.top_size() == 1 && lp.top(0) == lp.bottom(0);
}

}  // namespace

int fuse_relus(const proto::NetParameter& param, std::vector<std::unique_ptr<Layer>>& layers,
               const std::vector<std::vector<int>>& bottoms,
               const std::vector<std::vector<int>>& tops) {
  int blobs = 0;
  for (const auto& t : tops) {
    for (int b : t) blobs = std::max(blobs, b + 1);
  }
  std::vector<int> producer(static_cast<std::size_t>(blobs), -1);
  std::vector<int> readers(static_cast<std::size_t>(blobs), 0);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    for (int b : tops[l]) producer[static_cast<std::size_t>(b)] = static_cast<int>(l);
    for (int b : bottoms[l]) ++readers[static_cast<std::size_t>(b)];
  }
  int fused = 0;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    if (!in_place_relu(param.layer(static_cast<int>(l)))) continue;
    const auto blob = static_cast<std::size_t>(bottoms[l][0]);
    const int p = producer[blob];
    if (p < 0 || readers[blob] != 1 || tops[static_cast<std::size_t>(p)].size() != 1) continue;
    if (!layers[static_cast<std::size_t>(p)]->absorb_relu()) continue;
    layers[l]->relu_absorbed();
    ++fused;
  }
  return fused;
}

int fold_batch_norms(std::vector<std::unique_ptr<Layer>>& layers, const std::vector<LayerIO>& io,
                     const std::vector<std::vector<int>>& bottoms,
                     const std::vector<std::vector<int>>& tops) {
  std::map<int, int> producer, readers;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    for (int b : tops[l]) producer[b] = static_cast<int>(l);
    for (int b : bottoms[l]) ++readers[b];
  }
  int folded = 0;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    if (layers[l]->type() != "BatchNorm" || bottoms[l].size() != 1) continue;
    const int blob = bottoms[l][0];
    const auto p = producer.find(blob);
    if (p == producer.end() || readers[blob] != 1) continue;
    Layer& conv = *layers[static_cast<std::size_t>(p->second)];
    if (conv.type() != "Convolution" || tops[static_cast<std::size_t>(p->second)].size() != 1) {
      continue;
    }
    if (!conv.absorb_batch_norm(*layers[l], io[l])) continue;
    layers[l]->folded_into_producer();
    ++folded;
  }
  return folded;
}

}  // namespace ruche
