// SoftmaxWithLoss: see softmax_loss_layer.h.
#include "engine/layers/softmax_loss_layer.h"

#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"

namespace ruche {

SoftmaxWithLossLayer::SoftmaxWithLossLayer(const proto::LayerParameter& p) : Layer(p) {
  ce_.label_smoothing = p.loss_param().label_smoothing();
  RUCHE_REQUIRE(ce_.label_smoothing >= 0.0f && ce_.label_smoothing <= 1.0f)
      << "SoftmaxWithLoss: loss_param.label_smoothing must be in [0, 1], got "
      << ce_.label_smoothing;
  if (p.loss_param().has_ignore_label()) ce_.ignore_label = p.loss_param().ignore_label();
}

std::vector<Shape> SoftmaxWithLossLayer::reshape(const std::vector<Shape>& bottoms, int) {
  layers::require_bottoms("SoftmaxWithLoss", bottoms, 2);
  const Shape& x = bottoms[0];
  bool trailing_ones = x.ndim() >= 2;
  for (int i = 2; i < x.ndim(); ++i) trailing_ones = trailing_ones && x[i] == 1;
  RUCHE_REQUIRE(trailing_ones && x.numel() > 0)
      << "SoftmaxWithLoss: expected logits [N, C] (bottom 0), got " << x.str();
  logits_ = Shape{x[0], x[1]};
  RUCHE_REQUIRE(bottoms[1] == Shape{x[0]})
      << "SoftmaxWithLoss: expected labels [" << x[0] << "] (bottom 1) for logits " << x.str()
      << ", got " << bottoms[1].str();
  const int weights = param().loss_param().class_weight_size();
  RUCHE_REQUIRE(weights == 0 || weights == x[1])
      << "SoftmaxWithLoss: loss_param.class_weight has " << weights << " entries but there are "
      << x[1] << " classes; give one weight per class";
  return {Shape{1}};
}

void SoftmaxWithLossLayer::allocate(Device device) {
  probs_ = Tensor::empty(logits_, DType::f32, device);
  if (device.is_cuda()) label_check_ = Tensor::empty(Shape{1}, DType::i64, device);
  const auto& w = param().loss_param().class_weight();
  if (!w.empty()) {
    const std::vector<float> values(w.begin(), w.end());
    ce_.class_weights = Tensor::from_vector(values, Shape{logits_[1]}).to(device);
  }
}

double SoftmaxWithLossLayer::forward_flops() const { return 3.0 * logits_.numel(); }

Tensor SoftmaxWithLossLayer::logits_2d(const Tensor& t) const {
  return t.ndim() == 2 ? t : t.view(logits_);
}

void SoftmaxWithLossLayer::forward(LayerIO& io, const StepContext& ctx) {
  ce_.label_check = ctx.defer_checks ? label_check_ : Tensor();
  ops::softmax_cross_entropy_forward(logits_2d(io.bottom[0]), io.bottom[1], probs_, io.top[0], ce_);
}

std::string SoftmaxWithLossLayer::deferred_check_failure(std::int64_t code) const {
  if (code == ops::kNoBadLabel) return {};
  return ops::bad_label_message("SoftmaxWithLoss '" + name() + "'", code, logits_[1]);
}

void SoftmaxWithLossLayer::backward(LayerIO& io, const StepContext& ctx) {
  if (!layers::entry(io.bottom_diff, 0).defined()) return;
  Tensor dlogits = logits_2d(io.bottom_diff[0]);
  ops::softmax_cross_entropy_backward(probs_, io.bottom[1], dlogits, ctx.loss_scale, ce_);
}

std::unique_ptr<Layer> make_softmax_with_loss_layer(const proto::LayerParameter& p) {
  return std::make_unique<SoftmaxWithLossLayer>(p);
}

}  // namespace ruche
