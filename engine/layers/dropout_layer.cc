// Dropout (inverted): in training each element is kept with probability 1 - p and scaled by
// 1 / (1 - p); at test time the layer is the identity. The mask comes from the counter-based stream
// (seed, dropout, epoch, step, layer id), so it is the same on every device, thread count and
// resume, and differs between steps and layers.
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class DropoutLayer final : public Layer {
 public:
  explicit DropoutLayer(const proto::LayerParameter& p)
      : Layer(p),
        p_(p.dropout_param().dropout_ratio()),
        id_(layers::stream_id_of(p.name())) {
    RUCHE_REQUIRE(p_ >= 0.0f && p_ < 1.0f)
        << "Dropout: dropout_ratio must be in [0, 1), got " << p_;
  }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    layers::require_bottoms("Dropout", bottoms, 1);
    x_ = bottoms[0];
    return {x_};
  }
  bool in_place_ok() const override { return true; }
  LayoutUse layout_use() const override {
    return ops::takes_blocked("dropout_forward") && ops::takes_blocked("dropout_backward")
               ? LayoutUse::follows
               : LayoutUse::plain;
  }
  void allocate(Device device) override { mask_ = Tensor::empty(x_, DType::u8, device); }

  void forward(LayerIO& io, const StepContext& ctx) override {
    if (ctx.phase == Phase::train) {
      const RngStream stream{ctx.seed, RngPurpose::dropout, ctx.epoch, ctx.step, id_};
      ops::dropout_forward(io.bottom[0], io.top[0], mask_, p_, stream);
    } else if (!layers::same_elements(io.top[0], io.bottom[0])) {
      io.top[0].copy_from(io.bottom[0]);
    }
  }

  void backward(LayerIO& io, const StepContext& ctx) override {
    if (!layers::entry(io.bottom_diff, 0).defined()) return;
    if (ctx.phase == Phase::train) {
      ops::dropout_backward(io.top_diff[0], mask_, io.bottom_diff[0], p_);
    } else if (!layers::same_elements(io.bottom_diff[0], io.top_diff[0])) {
      io.bottom_diff[0].copy_from(io.top_diff[0]);
    }
  }

 private:
  float p_;
  std::uint32_t id_;
  Shape x_;
  Tensor mask_;
};

}  // namespace

std::unique_ptr<Layer> make_dropout_layer(const proto::LayerParameter& p) {
  return std::make_unique<DropoutLayer>(p);
}

}  // namespace ruche
