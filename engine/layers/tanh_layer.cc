// TanH: y = tanh(x).
#include "engine/layers/activation_layer.h"
#include "engine/layers/layer_factories.h"

namespace ruche {

std::unique_ptr<Layer> make_tanh_layer(const proto::LayerParameter& p) {
  return std::make_unique<layers::ActivationLayer>(p, ops::Activation::tanh, 0.0f);
}

}  // namespace ruche
