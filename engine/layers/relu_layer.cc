// ReLU, or leaky ReLU when relu_param.negative_slope > 0 (torch.nn.LeakyReLU).
#include "engine/layers/activation_layer.h"
#include "engine/layers/layer_factories.h"

namespace ruche {

std::unique_ptr<Layer> make_relu_layer(const proto::LayerParameter& p) {
  const float slope = p.relu_param().negative_slope();
  RUCHE_REQUIRE(slope >= 0.0f) << "ReLU: negative_slope must be >= 0, got " << slope;
  const auto kind = slope > 0.0f ? ops::Activation::leaky_relu : ops::Activation::relu;
  return std::make_unique<layers::ActivationLayer>(p, kind, slope);
}

}  // namespace ruche
