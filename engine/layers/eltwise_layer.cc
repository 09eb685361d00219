// Eltwise (Caffe's): SUM top = sum coeff_i * bottom_i (the residual join; coeff 1 by default),
// PROD top = bottom0 * bottom1 * ..., MAX top = the element-wise maximum. Gradients: coeff_i * dy;
// dy times the product of the other bottoms (Caffe's stable_prod_grad); dy to the bottom that
// held the maximum (a tie goes to the earlier bottom).
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

using Op = proto::EltwiseParameter;

class EltwiseLayer final : public Layer {
 public:
  explicit EltwiseLayer(const proto::LayerParameter& p)
      : Layer(p),
        op_(p.eltwise_param().operation()),
        coeff_(p.eltwise_param().coeff().begin(), p.eltwise_param().coeff().end()) {
    RUCHE_REQUIRE(coeff_.empty() || op_ == Op::SUM) << "Eltwise: coeff is for operation SUM only";
  }

  int num_bottoms() const override { return -1; }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    RUCHE_REQUIRE(bottoms.size() >= 2)
        << "Eltwise: expected 2 or more bottoms, got " << bottoms.size();
    RUCHE_REQUIRE(coeff_.empty() || coeff_.size() == bottoms.size())
        << "Eltwise: " << coeff_.size() << " coeff for " << bottoms.size()
        << " bottoms; give one per bottom";
    for (std::size_t i = 1; i < bottoms.size(); ++i) {
      RUCHE_REQUIRE(bottoms[i] == bottoms[0])
          << "Eltwise: every bottom must have the shape of bottom 0 " << bottoms[0].str()
          << ", bottom " << i << " is " << bottoms[i].str();
    }
    flops_ = static_cast<double>(bottoms[0].numel()) * static_cast<double>(bottoms.size() - 1);
    top_ = bottoms[0];
    return {bottoms[0]};
  }
  double forward_flops() const override { return flops_; }
  LayoutUse layout_use() const override {
    // MAX keeps a plain mask; SUM and PROD are element-wise ops on tensors of one layout.
    const bool blocked = op_ != Op::MAX && ops::takes_blocked("add") &&
                         ops::takes_blocked("axpy") && ops::takes_blocked("scale") &&
                         ops::takes_blocked("mul");
    return blocked ? LayoutUse::follows : LayoutUse::plain;
  }

  void allocate(Device device) override {
    if (op_ == Op::MAX) mask_ = Tensor::empty(top_, DType::f32, device);
  }

  void forward(LayerIO& io, const StepContext&) override {
    Tensor& y = io.top[0];
    if (op_ == Op::SUM && coeff_.empty()) {
      ops::add(io.bottom[0], io.bottom[1], y);
      for (std::size_t i = 2; i < io.bottom.size(); ++i) ops::axpy(1.0f, io.bottom[i], y);
    } else if (op_ == Op::SUM) {
      y.copy_from(io.bottom[0]);
      ops::scale(coeff_[0], y);
      for (std::size_t i = 1; i < io.bottom.size(); ++i) ops::axpy(coeff_[i], io.bottom[i], y);
    } else if (op_ == Op::PROD) {
      ops::mul(io.bottom[0], io.bottom[1], y);
      for (std::size_t i = 2; i < io.bottom.size(); ++i) ops::mul(y, io.bottom[i], y);
    } else {
      Tensor& mask = layers::scratch_like(mask_, y);
      y.copy_from(io.bottom[0]);
      mask.fill(0.0f);
      for (std::size_t i = 1; i < io.bottom.size(); ++i) {
        ops::max_into(io.bottom[i], static_cast<float>(i), y, mask);
      }
    }
  }

  void backward(LayerIO& io, const StepContext&) override {
    const Tensor& dy = io.top_diff[0];
    // The Net may hand the top's gradient itself to one bottom: that one is written last.
    std::size_t aliased = io.bottom_diff.size();
    for (std::size_t i = 0; i < io.bottom_diff.size(); ++i) {
      if (io.bottom_diff[i].defined() && layers::same_elements(io.bottom_diff[i], dy)) aliased = i;
    }
    for (std::size_t i = 0; i < io.bottom_diff.size(); ++i) {
      if (i != aliased && io.bottom_diff[i].defined()) bottom_gradient(io, i);
    }
    if (aliased < io.bottom_diff.size()) bottom_gradient(io, aliased);
  }

 private:
  void bottom_gradient(LayerIO& io, std::size_t i) {
    const Tensor& dy = io.top_diff[0];
    Tensor& dx = io.bottom_diff[i];
    if (op_ == Op::MAX) {
      ops::max_backward(mask_, static_cast<float>(i), dy, dx);
      return;
    }
    if (!layers::same_elements(dx, dy)) dx.copy_from(dy);
    if (op_ == Op::SUM) {
      if (!coeff_.empty() && coeff_[i] != 1.0f) ops::scale(coeff_[i], dx);
      return;
    }
    for (std::size_t j = 0; j < io.bottom.size(); ++j) {
      if (j != i) ops::mul(dx, io.bottom[j], dx);
    }
  }

  Op::EltwiseOp op_;
  std::vector<float> coeff_;
  Tensor mask_;  // MAX: the index of the bottom that held each maximum
  Shape top_;
  double flops_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_eltwise_layer(const proto::LayerParameter& p) {
  return std::make_unique<EltwiseLayer>(p);
}

}  // namespace ruche
