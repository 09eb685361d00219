// Concat: the bottoms joined along concat_param.axis (torch.cat(bottoms, dim=axis)); every other
// dim must agree. Each bottom's gradient is its block of the top's.
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class ConcatLayer final : public Layer {
 public:
  explicit ConcatLayer(const proto::LayerParameter& p) : Layer(p) {}

  int num_bottoms() const override { return -1; }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    RUCHE_REQUIRE(!bottoms.empty()) << "Concat: expected 1 or more bottoms, got none";
    const Shape& first = bottoms[0];
    axis_ = param().concat_param().axis();
    ndim_ = first.ndim();
    if (axis_ < 0) axis_ += first.ndim();
    RUCHE_REQUIRE(axis_ >= 0 && axis_ < first.ndim())
        << "Concat: axis " << param().concat_param().axis() << " is outside bottom 0 "
        << first.str();
    Shape top = first;
    top[axis_] = 0;
    offsets_.clear();
    for (std::size_t i = 0; i < bottoms.size(); ++i) {
      const Shape& b = bottoms[i];
      bool fits = b.ndim() == first.ndim();
      for (int d = 0; fits && d < b.ndim(); ++d) fits = d == axis_ || b[d] == first[d];
      RUCHE_REQUIRE(fits) << "Concat: bottom " << i << " " << b.str() << " does not fit bottom 0 "
                          << first.str() << " (only axis " << axis_ << " may differ)";
      offsets_.push_back(top[axis_]);
      top[axis_] += b[axis_];
    }
    return {top};
  }

  LayoutUse layout_use() const override {
    // Along the channels of images the copies take the planned layouts (whole channel blocks).
    const bool channels = axis_ == 1 && ndim_ == 4 && ops::takes_blocked("copy_into_axis") &&
                          ops::takes_blocked("copy_from_axis");
    return channels ? LayoutUse::follows : LayoutUse::plain;
  }

  void forward(LayerIO& io, const StepContext&) override {
    for (std::size_t i = 0; i < io.bottom.size(); ++i) {
      ops::copy_into_axis(io.bottom[i], io.top[0], axis_, offsets_[i]);
    }
  }

  void backward(LayerIO& io, const StepContext&) override {
    for (std::size_t i = 0; i < io.bottom_diff.size(); ++i) {
      if (io.bottom_diff[i].defined()) {
        ops::copy_from_axis(io.top_diff[0], io.bottom_diff[i], axis_, offsets_[i]);
      }
    }
  }

 private:
  int axis_ = 1, ndim_ = 0;
  std::vector<std::int64_t> offsets_;
};

}  // namespace

std::unique_ptr<Layer> make_concat_layer(const proto::LayerParameter& p) {
  return std::make_unique<ConcatLayer>(p);
}

}  // namespace ruche
