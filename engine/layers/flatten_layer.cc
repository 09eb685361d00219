// Flatten: [d0, ..., d(axis-1), d(axis), ...] -> [d0, ..., d(axis-1), d(axis) * ...]
// (torch.flatten(x, axis)). The Net allocates every top, so forward and backward copy; the copy is
// skipped when the Net made the two blobs share memory.
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"

namespace ruche {
namespace {

class FlattenLayer final : public Layer {
 public:
  explicit FlattenLayer(const proto::LayerParameter& p) : Layer(p) {}

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    layers::require_bottoms("Flatten", bottoms, 1);
    const Shape& x = bottoms[0];
    int axis = param().flatten_param().axis();
    if (axis < 0) axis += x.ndim();
    RUCHE_REQUIRE(axis >= 1 && axis < x.ndim())
        << "Flatten: axis " << param().flatten_param().axis() << " is outside [1, " << x.ndim()
        << ") for input " << x.str();
    Shape y(x.begin(), x.begin() + axis);
    std::int64_t rest = 1;
    for (int i = axis; i < x.ndim(); ++i) rest *= x[i];
    y.push_back(rest);
    return {y};
  }

  void forward(LayerIO& io, const StepContext&) override {
    const Tensor x = io.bottom[0].view(io.top[0].shape());
    if (!layers::same_elements(x, io.top[0])) io.top[0].copy_from(x);
  }

  void backward(LayerIO& io, const StepContext&) override {
    if (!layers::entry(io.bottom_diff, 0).defined()) return;
    Tensor dx = io.bottom_diff[0].view(io.top_diff[0].shape());
    if (!layers::same_elements(dx, io.top_diff[0])) dx.copy_from(io.top_diff[0]);
  }
};

}  // namespace

std::unique_ptr<Layer> make_flatten_layer(const proto::LayerParameter& p) {
  return std::make_unique<FlattenLayer>(p);
}

}  // namespace ruche
