// Scale (Caffe's): y = x * scale + bias, the scale (and bias) shaped as x's dims axis ..
// axis + num_axes - 1 (a per-channel vector by default). The scale is the learned "weight"
// (filler default constant 1) or, with two bottoms, the second bottom; bias_term adds a learned
// "bias" (default 0). After BatchNorm { affine: false } it is the affine part: the pair equals
// torch.nn.BatchNorm2d(affine=True) with Scale's weight and bias as BN's.
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class ScaleLayer final : public Layer {
 public:
  explicit ScaleLayer(const proto::LayerParameter& p) : Layer(p) {}

  int num_bottoms() const override { return -1; }
  bool params_in_compute_dtype() const override { return true; }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    RUCHE_REQUIRE(bottoms.size() == 1 || bottoms.size() == 2)
        << "Scale: expected 1 or 2 bottoms, got " << bottoms.size();
    const Shape& x = bottoms[0];
    const auto& sp = param().scale_param();
    axis_ = sp.axis();
    if (axis_ < 0) axis_ += x.ndim();
    RUCHE_REQUIRE(axis_ >= 0 && axis_ < x.ndim())
        << "Scale: axis " << sp.axis() << " is outside bottom 0 " << x.str();
    from_bottom_ = bottoms.size() == 2;
    if (from_bottom_) {
      scale_shape_ = bottoms[1];
    } else {
      const int axes = sp.num_axes() < 0 ? x.ndim() - axis_ : sp.num_axes();
      RUCHE_REQUIRE(axes >= 1 && axis_ + axes <= x.ndim())
          << "Scale: num_axes " << sp.num_axes() << " from axis " << axis_ << " does not fit "
          << x.str() << " (at least one axis)";
      scale_shape_ = Shape(x.begin() + axis_, x.begin() + axis_ + axes);
    }
    bool fits = axis_ + scale_shape_.ndim() <= x.ndim();
    for (int d = 0; fits && d < scale_shape_.ndim(); ++d) fits = scale_shape_[d] == x[axis_ + d];
    RUCHE_REQUIRE(fits) << "Scale: the scale " << scale_shape_.str() << " does not match dims "
                        << axis_ << ".. of bottom 0 " << x.str();
    flops_ = static_cast<double>(x.numel());
    return {x};
  }
  double forward_flops() const override { return flops_; }

  std::vector<ParamDecl> param_decls() const override {
    const auto& sp = param().scale_param();
    std::vector<ParamDecl> decls;
    if (!from_bottom_) {
      ParamDecl w;
      w.suffix = "weight";
      w.shape = scale_shape_;
      w.role = ParamRole::norm_weight;
      w.filler = sp.has_filler() && sp.filler().type() != "default" ? sp.filler()
                                                                    : layers::constant_filler(1);
      w.fan_in = w.fan_out = scale_shape_.numel();
      decls.push_back(w);
    }
    if (sp.bias_term()) {
      ParamDecl b;
      b.suffix = "bias";
      b.shape = scale_shape_;
      b.role = ParamRole::norm_bias;
      b.filler = sp.has_bias_filler() && sp.bias_filler().type() != "default"
                     ? sp.bias_filler()
                     : layers::constant_filler(0);
      b.fan_in = b.fan_out = scale_shape_.numel();
      decls.push_back(b);
    }
    return decls;
  }

  void forward(LayerIO& io, const StepContext&) override {
    ops::channel_scale_forward(io.bottom[0], scale_of(io), bias_of(io), io.top[0], axis_);
  }

  void backward(LayerIO& io, const StepContext&) override {
    Tensor dx = layers::entry(io.bottom_diff, 0);
    Tensor dscale =
        from_bottom_ ? layers::entry(io.bottom_diff, 1) : layers::entry(io.param_grads, 0);
    Tensor dbias = param().scale_param().bias_term()
                       ? layers::entry(io.param_grads, from_bottom_ ? 0 : 1)
                       : Tensor();
    if (!dx.defined() && !dscale.defined() && !dbias.defined()) return;
    ops::channel_scale_backward(io.bottom[0], scale_of(io), io.top_diff[0], dx, dscale, dbias,
                                axis_);
  }

 private:
  const Tensor& scale_of(const LayerIO& io) const {
    return from_bottom_ ? io.bottom[1] : io.params[0];
  }
  Tensor bias_of(const LayerIO& io) const {
    if (!param().scale_param().bias_term()) return Tensor();
    return io.params[from_bottom_ ? 0 : 1];
  }

  int axis_ = 1;
  bool from_bottom_ = false;
  Shape scale_shape_;
  double flops_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_scale_layer(const proto::LayerParameter& p) {
  return std::make_unique<ScaleLayer>(p);
}

}  // namespace ruche
