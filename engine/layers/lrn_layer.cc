// LRN: local response normalisation (ops.h lrn_forward), across channels as
// torch.nn.LocalResponseNorm(size, alpha, beta, k) (alpha divided by size, as PyTorch and Caffe
// do), or within a channel as Caffe's WITHIN_CHANNEL (alpha divided by size^2; Caffe's k is 1).
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class LrnLayer final : public Layer {
 public:
  explicit LrnLayer(const proto::LayerParameter& p) : Layer(p) {
    const auto& lp = p.lrn_param();
    RUCHE_REQUIRE(lp.local_size() >= 1) << "LRN: local_size must be >= 1";
    RUCHE_REQUIRE(lp.k() > 0 || lp.alpha() > 0) << "LRN: k or alpha must be positive";
    p_.region = lp.norm_region() == proto::LRNParameter::WITHIN_CHANNEL
                    ? ops::LrnRegion::within_channel
                    : ops::LrnRegion::across_channels;
    p_.size = static_cast<int>(lp.local_size());
    p_.alpha = lp.alpha();
    p_.beta = lp.beta();
    p_.k = lp.k();
  }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    layers::require_bottoms("LRN", bottoms, 1);
    layers::require_ndim("LRN", bottoms[0], 4, "[N, C, H, W]");
    shape_ = bottoms[0];
    const double window = p_.region == ops::LrnRegion::across_channels
                              ? p_.size
                              : static_cast<double>(p_.size) * p_.size;
    flops_ = static_cast<double>(shape_.numel()) * (window + 2);
    return {shape_};
  }
  double forward_flops() const override { return flops_; }

  void allocate(Device device) override { scale_ = Tensor::zeros(shape_, DType::f32, device); }

  void forward(LayerIO& io, const StepContext&) override {
    ops::lrn_forward(io.bottom[0], io.top[0], scale_, p_);
  }

  void backward(LayerIO& io, const StepContext&) override {
    if (!layers::entry(io.bottom_diff, 0).defined()) return;
    ops::lrn_backward(io.bottom[0], io.top[0], scale_, io.top_diff[0], io.bottom_diff[0], p_);
  }

 private:
  ops::LrnParams p_;
  Shape shape_;
  Tensor scale_;
  double flops_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_lrn_layer(const proto::LayerParameter& p) {
  return std::make_unique<LrnLayer>(p);
}

}  // namespace ruche
