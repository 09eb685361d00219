// EuclideanLoss: mean((pred - target)^2) over every element (torch.nn.MSELoss, mean reduction;
// not Caffe's sum / 2N). Both bottoms get a gradient where the Net asks for one.
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class EuclideanLossLayer final : public Layer {
 public:
  explicit EuclideanLossLayer(const proto::LayerParameter& p) : Layer(p) {}

  int num_bottoms() const override { return 2; }  // prediction, target

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    layers::require_bottoms("EuclideanLoss", bottoms, 2);
    RUCHE_REQUIRE(bottoms[0] == bottoms[1] && bottoms[0].numel() > 0)
        << "EuclideanLoss: expected the prediction and the target to have one shape, got "
        << bottoms[0].str() << " and " << bottoms[1].str();
    return {Shape{1}};
  }

  void forward(LayerIO& io, const StepContext&) override {
    ops::mse_forward(io.bottom[0], io.bottom[1], io.top[0]);
  }

  // For a loss gradient of 1 (the Net seeds the loss with 1). d/dtarget = -d/dpred.
  void backward(LayerIO& io, const StepContext& ctx) override {
    if (layers::entry(io.bottom_diff, 0).defined()) {
      ops::mse_backward(io.bottom[0], io.bottom[1], io.bottom_diff[0], ctx.loss_scale);
    }
    if (layers::entry(io.bottom_diff, 1).defined()) {
      ops::mse_backward(io.bottom[1], io.bottom[0], io.bottom_diff[1], ctx.loss_scale);
    }
  }
};

}  // namespace

std::unique_ptr<Layer> make_euclidean_loss_layer(const proto::LayerParameter& p) {
  return std::make_unique<EuclideanLossLayer>(p);
}

}  // namespace ruche
