// Sigmoid: y = 1 / (1 + exp(-x)).
#include "engine/layers/activation_layer.h"
#include "engine/layers/layer_factories.h"

namespace ruche {

std::unique_ptr<Layer> make_sigmoid_layer(const proto::LayerParameter& p) {
  return std::make_unique<layers::ActivationLayer>(p, ops::Activation::sigmoid, 0.0f);
}

}  // namespace ruche
