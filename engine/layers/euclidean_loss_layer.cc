// EuclideanLoss: mean((pred - target)^2) over every element (torch.nn.MSELoss, mean reduction;
// not Caffe's sum / 2N). Both bottoms get a gradient where the Net asks for one. As Caffe, the
// bottoms need the same batch and the same count per sample, not the same shape: an autoencoder's
// flat [B, 784] reconstruction meets its [B, 1, 28, 28] target.
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
    RUCHE_REQUIRE(bottoms[0].ndim() > 0 && bottoms[1].ndim() > 0 &&
                  bottoms[0][0] == bottoms[1][0] && bottoms[0].numel() == bottoms[1].numel() &&
                  bottoms[0].numel() > 0)
        << "EuclideanLoss: expected the prediction and the target to have one batch and one "
        << "count per sample, got " << bottoms[0].str() << " and " << bottoms[1].str();
    return {Shape{1}};
  }

  void forward(LayerIO& io, const StepContext&) override {
    ops::mse_forward(io.bottom[0], as_prediction(io.bottom[1], io.bottom[0]), io.top[0]);
  }

  // For a loss gradient of 1 (the Net seeds the loss with 1). d/dtarget = -d/dpred.
  void backward(LayerIO& io, const StepContext& ctx) override {
    const Tensor target = as_prediction(io.bottom[1], io.bottom[0]);
    if (layers::entry(io.bottom_diff, 0).defined()) {
      ops::mse_backward(io.bottom[0], target, io.bottom_diff[0], ctx.loss_scale);
    }
    if (layers::entry(io.bottom_diff, 1).defined()) {
      Tensor diff = as_prediction(io.bottom_diff[1], io.bottom[0]);
      ops::mse_backward(target, io.bottom[0], diff, ctx.loss_scale);
    }
  }

 private:
  // `t` seen in the prediction's shape (the same elements in the same order).
  static Tensor as_prediction(const Tensor& t, const Tensor& prediction) {
    return t.shape() == prediction.shape() ? t : t.view(prediction.shape());
  }
};

}  // namespace

std::unique_ptr<Layer> make_euclidean_loss_layer(const proto::LayerParameter& p) {
  return std::make_unique<EuclideanLossLayer>(p);
}

}  // namespace ruche
