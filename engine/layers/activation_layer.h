// The element-wise activation layers (ReLU, Sigmoid, TanH) share this body: forward and backward
// are one op each, and backward reads the output, so the layers may run in place.
#pragma once

#include <string>

#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche::layers {

class ActivationLayer : public Layer {
 public:
  ActivationLayer(const proto::LayerParameter& p, ops::Activation kind, float alpha)
      : Layer(p),
        kind_(kind),
        alpha_(alpha) {}

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    require_bottoms(type(), bottoms, 1);
    numel_ = bottoms[0].numel();
    return {bottoms[0]};
  }
  bool in_place_ok() const override { return true; }
  LayoutUse layout_use() const override {
    return ops::takes_blocked("activation_forward") && ops::takes_blocked("activation_backward")
               ? LayoutUse::follows
               : LayoutUse::plain;
  }
  double forward_flops() const override { return static_cast<double>(numel_); }

  void relu_absorbed() override {
    RUCHE_CHECK(kind_ == ops::Activation::relu) << type() << " '" << name() << "' is no ReLU";
    absorbed_ = true;
  }
  void forward(LayerIO& io, const StepContext&) override {
    if (absorbed_) return;  // the producer's forward applied it (backward reads the output)
    ops::activation_forward(kind_, alpha_, io.bottom[0], io.top[0]);
  }
  void backward(LayerIO& io, const StepContext&) override {
    if (!entry(io.bottom_diff, 0).defined()) return;
    ops::activation_backward(kind_, alpha_, io.top[0], io.top_diff[0], io.bottom_diff[0]);
  }

 private:
  ops::Activation kind_;
  float alpha_;
  std::int64_t numel_ = 0;
  bool absorbed_ = false;
};

}  // namespace ruche::layers
