// Eltwise SUM: top = bottom0 + bottom1 + ... (the residual join). Each bottom's gradient is the
// top's gradient.
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class EltwiseLayer final : public Layer {
 public:
  explicit EltwiseLayer(const proto::LayerParameter& p) : Layer(p) {
    RUCHE_REQUIRE(p.eltwise_param().operation() == proto::EltwiseParameter::SUM)
        << "Eltwise: only operation SUM is supported";
  }

  int num_bottoms() const override { return -1; }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    RUCHE_REQUIRE(bottoms.size() >= 2)
        << "Eltwise: expected 2 or more bottoms, got " << bottoms.size();
    for (std::size_t i = 1; i < bottoms.size(); ++i) {
      RUCHE_REQUIRE(bottoms[i] == bottoms[0])
          << "Eltwise: every bottom must have the shape of bottom 0 " << bottoms[0].str()
          << ", bottom " << i << " is " << bottoms[i].str();
    }
    flops_ = static_cast<double>(bottoms[0].numel()) * static_cast<double>(bottoms.size() - 1);
    return {bottoms[0]};
  }
  double forward_flops() const override { return flops_; }

  void forward(LayerIO& io, const StepContext&) override {
    ops::add(io.bottom[0], io.bottom[1], io.top[0]);
    for (std::size_t i = 2; i < io.bottom.size(); ++i) ops::axpy(1.0f, io.bottom[i], io.top[0]);
  }

  void backward(LayerIO& io, const StepContext&) override {
    for (Tensor& dx : io.bottom_diff) {
      // The Net may hand the top's gradient itself to a bottom (no copy needed then).
      if (dx.defined() && !layers::same_elements(dx, io.top_diff[0])) dx.copy_from(io.top_diff[0]);
    }
  }

 private:
  double flops_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_eltwise_layer(const proto::LayerParameter& p) {
  return std::make_unique<EltwiseLayer>(p);
}

}  // namespace ruche
