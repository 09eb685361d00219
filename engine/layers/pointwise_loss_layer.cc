// Element-wise losses against a float target, mean over every element (ops::pointwise_loss_*):
//   L1Loss                   |pred - target|                     torch.nn.L1Loss
//   SmoothL1Loss             Huber with beta 1                   torch.nn.SmoothL1Loss()
//   SigmoidCrossEntropyLoss  BCE of sigmoid(logits) and target   torch.nn.BCEWithLogitsLoss
// (Caffe's SigmoidCrossEntropyLoss divides by the batch; this one, as PyTorch, by every element.)
// As EuclideanLoss, the bottoms need one batch and one count per sample, not one shape; both get
// a gradient where the Net asks for one (d/dtarget of L1 and smooth L1 is -d/dpred; the BCE's
// target gets none).
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class PointwiseLossLayer final : public Layer {
 public:
  PointwiseLossLayer(const proto::LayerParameter& p, ops::PointwiseLoss kind) : Layer(p) {
    params_.kind = kind;
  }

  int num_bottoms() const override { return 2; }  // prediction (logits), target

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    layers::require_bottoms(type().c_str(), bottoms, 2);
    RUCHE_REQUIRE(bottoms[0].ndim() > 0 && bottoms[1].ndim() > 0 &&
                  bottoms[0][0] == bottoms[1][0] && bottoms[0].numel() == bottoms[1].numel() &&
                  bottoms[0].numel() > 0)
        << type() << ": expected the prediction and the target to have one batch and one count "
        << "per sample, got " << bottoms[0].str() << " and " << bottoms[1].str();
    return {Shape{1}};
  }

  double forward_flops() const override { return 0; }

  void forward(LayerIO& io, const StepContext&) override {
    ops::pointwise_loss_forward(params_, io.bottom[0], as_prediction(io.bottom[1], io.bottom[0]),
                                io.top[0]);
  }

  void backward(LayerIO& io, const StepContext& ctx) override {
    const Tensor target = as_prediction(io.bottom[1], io.bottom[0]);
    if (layers::entry(io.bottom_diff, 0).defined()) {
      ops::pointwise_loss_backward(params_, io.bottom[0], target, io.bottom_diff[0],
                                   ctx.loss_scale);
    }
    if (layers::entry(io.bottom_diff, 1).defined()) {
      RUCHE_REQUIRE(params_.kind != ops::PointwiseLoss::bce_logits)
          << type() << ": no gradient for the target (bottom 1)";
      Tensor diff = as_prediction(io.bottom_diff[1], io.bottom[0]);
      ops::pointwise_loss_backward(params_, target, io.bottom[0], diff, ctx.loss_scale);
    }
  }

 private:
  static Tensor as_prediction(const Tensor& t, const Tensor& prediction) {
    return t.shape() == prediction.shape() ? t : t.view(prediction.shape());
  }

  ops::PointwiseLossParams params_;
};

}  // namespace

std::unique_ptr<Layer> make_l1_loss_layer(const proto::LayerParameter& p) {
  return std::make_unique<PointwiseLossLayer>(p, ops::PointwiseLoss::l1);
}

std::unique_ptr<Layer> make_smooth_l1_loss_layer(const proto::LayerParameter& p) {
  return std::make_unique<PointwiseLossLayer>(p, ops::PointwiseLoss::smooth_l1);
}

std::unique_ptr<Layer> make_sigmoid_cross_entropy_loss_layer(const proto::LayerParameter& p) {
  return std::make_unique<PointwiseLossLayer>(p, ops::PointwiseLoss::bce_logits);
}

}  // namespace ruche
