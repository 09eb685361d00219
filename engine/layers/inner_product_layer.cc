// InnerProduct: y = x w^T + b as torch.nn.Linear, on [B, ...] bottoms read as [B, in] through a
// view (no copy). num_output 0 means the dataset's number of classes (the classifier).
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class InnerProductLayer final : public Layer {
 public:
  explicit InnerProductLayer(const proto::LayerParameter& p) : Layer(p) {}

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int num_classes) override {
    layers::require_bottoms("InnerProduct", bottoms, 1);
    const Shape& x = bottoms[0];
    RUCHE_REQUIRE(x.ndim() >= 2 && x.numel() > 0)
        << "InnerProduct: expected an input [N, features...], got " << x.str();
    const std::uint32_t n = param().inner_product_param().num_output();
    out_ = n > 0 ? n : num_classes;
    RUCHE_REQUIRE(out_ > 0) << "InnerProduct: num_output is 0 (the number of classes) but the "
                               "number of classes is not known; set inner_product_param.num_output";
    batch_ = x[0];
    in_ = x.numel() / batch_;
    return {Shape{batch_, out_}};
  }

  std::vector<ParamDecl> param_decls() const override {
    const auto& q = param().inner_product_param();
    return layers::weight_and_bias(q, Shape{out_, in_}, out_, in_, out_);
  }

  bool params_in_compute_dtype() const override { return true; }

  double forward_flops() const override {
    return static_cast<double>(batch_) * static_cast<double>(in_) * static_cast<double>(out_);
  }

  void forward(LayerIO& io, const StepContext&) override {
    ops::linear_forward(flat(io.bottom[0]), io.params[0], layers::entry(io.params, 1), io.top[0]);
  }

  void backward(LayerIO& io, const StepContext&) override {
    const Tensor& dy = io.top_diff[0];
    if (layers::entry(io.bottom_diff, 0).defined()) {
      Tensor dx = flat(io.bottom_diff[0]);
      ops::linear_backward_data(dy, io.params[0], dx);
    }
    const Tensor& dw = layers::entry(io.param_grads, 0);
    Tensor db = layers::entry(io.param_grads, 1);
    if (!dw.defined() && !db.defined()) return;  // frozen
    // The op always writes dw; a frozen weight beside a trained bias writes into scratch.
    Tensor dw_out = dw.defined() ? dw : layers::scratch_like(dw_scratch_, io.params[0]);
    ops::linear_backward_weights(flat(io.bottom[0]), dy, dw_out, db);
  }

 private:
  // [B, ...] as [B, in]: same storage (Shape is fixed-capacity, so a view allocates nothing).
  Tensor flat(const Tensor& t) const { return t.ndim() == 2 ? t : t.view(Shape{batch_, in_}); }

  std::int64_t batch_ = 0, in_ = 0, out_ = 0;
  Tensor dw_scratch_;
};

}  // namespace

std::unique_ptr<Layer> make_inner_product_layer(const proto::LayerParameter& p) {
  return std::make_unique<InnerProductLayer>(p);
}

}  // namespace ruche
