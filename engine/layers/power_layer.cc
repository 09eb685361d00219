// Power (Caffe's): y = (shift + scale * x)^power, element-wise.
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class PowerLayer final : public Layer {
 public:
  explicit PowerLayer(const proto::LayerParameter& p) : Layer(p) {
    p_.power = p.power_param().power();
    p_.scale = p.power_param().scale();
    p_.shift = p.power_param().shift();
  }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    layers::require_bottoms("Power", bottoms, 1);
    return {bottoms[0]};
  }

  void forward(LayerIO& io, const StepContext&) override {
    ops::power_forward(io.bottom[0], io.top[0], p_);
  }

  void backward(LayerIO& io, const StepContext&) override {
    if (!layers::entry(io.bottom_diff, 0).defined()) return;
    ops::power_backward(io.bottom[0], io.top_diff[0], io.bottom_diff[0], p_);
  }

 private:
  ops::PowerParams p_;
};

}  // namespace

std::unique_ptr<Layer> make_power_layer(const proto::LayerParameter& p) {
  return std::make_unique<PowerLayer>(p);
}

}  // namespace ruche
