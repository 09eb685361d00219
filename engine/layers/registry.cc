// The layer registry: every layer type ruche knows, by its prototxt name (Caffe's LayerRegistry,
// as an explicit list so nothing depends on static-initialisation order or the linker).
#include <algorithm>
#include <map>

#include "engine/layers/layer.h"
#include "engine/layers/layer_factories.h"

namespace ruche {
namespace {

using Factory = std::unique_ptr<Layer> (*)(const proto::LayerParameter&);

const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> factories = {
      // filled as the layers land: {"Convolution", &make_convolution_layer}, ...
  };
  return factories;
}

}  // namespace

std::unique_ptr<Layer> create_layer(const proto::LayerParameter& p) {
  const auto it = registry().find(p.type());
  if (it == registry().end()) {
    std::string known;
    for (const auto& type : known_layer_types()) known += (known.empty() ? "" : ", ") + type;
    RUCHE_FAIL() << "unknown layer type '" << p.type() << "' (known: " << known << ")";
  }
  return it->second(p);
}

std::vector<std::string> known_layer_types() {
  std::vector<std::string> types;
  for (const auto& [type, factory] : registry()) types.push_back(type);
  return types;
}

}  // namespace ruche
