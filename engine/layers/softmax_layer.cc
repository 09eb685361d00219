// Softmax over softmax_param.axis (default 1; torch.softmax(x, dim=axis)): the class scores at
// inference, or per-pixel scores of [N, C, H, W].
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
    const Shape& x = bottoms[0];
    axis_ = param().softmax_param().axis();
    if (axis_ < 0) axis_ += x.ndim();
    RUCHE_REQUIRE(axis_ >= 0 && axis_ < x.ndim())
        << "Softmax: axis " << param().softmax_param().axis() << " is outside " << x.str();
    rows_ = x.ndim() == 2 && axis_ == 1;  // the [N, C] op
    return {x};
  }

  void forward(LayerIO& io, const StepContext&) override {
    if (rows_) {
      ops::softmax_forward(io.bottom[0], io.top[0]);
    } else {
      ops::softmax_axis_forward(io.bottom[0], io.top[0], axis_);
    }
  }

  void backward(LayerIO& io, const StepContext&) override {
    if (!layers::entry(io.bottom_diff, 0).defined()) return;
    if (rows_) {
      ops::softmax_backward(io.top[0], io.top_diff[0], io.bottom_diff[0]);
    } else {
      ops::softmax_axis_backward(io.top[0], io.top_diff[0], io.bottom_diff[0], axis_);
    }
  }

 private:
  int axis_ = 1;
  bool rows_ = true;
};

}  // namespace

std::unique_ptr<Layer> make_softmax_layer(const proto::LayerParameter& p) {
  return std::make_unique<SoftmaxLayer>(p);
}

}  // namespace ruche
