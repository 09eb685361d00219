// Softmax over dim 1 of [N, C] (the class scores at inference).
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class SoftmaxLayer final : public Layer {
 public:
  explicit SoftmaxLayer(const proto::LayerParameter& p) : Layer(p) {}

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    layers::require_bottoms("Softmax", bottoms, 1);
    layers::require_ndim("Softmax", bottoms[0], 2, "[N, C]");
    return {bottoms[0]};
  }

  void forward(LayerIO& io, const StepContext&) override {
    ops::softmax_forward(io.bottom[0], io.top[0]);
  }

  void backward(LayerIO& io, const StepContext&) override {
    if (!layers::entry(io.bottom_diff, 0).defined()) return;
    ops::softmax_backward(io.top[0], io.top_diff[0], io.bottom_diff[0]);
  }
};

}  // namespace

std::unique_ptr<Layer> make_softmax_layer(const proto::LayerParameter& p) {
  return std::make_unique<SoftmaxLayer>(p);
}

}  // namespace ruche
