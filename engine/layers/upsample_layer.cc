// Upsample: torch.nn.Upsample on NCHW planes, nearest (PyTorch's 'nearest': floor of o * scale) or
// bilinear (align_corners as PyTorch). upsample_param gives a scale factor (scale_factor, or
// scale_h and scale_w: the output is floor(input * scale), and the coordinates use 1 / scale, as
// nn.Upsample does) or an output size (height and width). No parameters.
#include <cmath>

#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class UpsampleLayer final : public Layer {
 public:
  explicit UpsampleLayer(const proto::LayerParameter& p) : Layer(p) {
    const auto& u = p.upsample_param();
    const std::string who = "Upsample '" + p.name() + "'";
    const bool by_scale = u.has_scale_factor() || u.has_scale_h() || u.has_scale_w();
    const bool by_size = u.has_height() || u.has_width();
    RUCHE_REQUIRE(by_scale != by_size)
        << who << ": upsample_param needs either a scale (scale_factor, or scale_h and scale_w) "
        << "or a size (height and width), " << (by_scale ? "not both" : "got neither");
    if (by_scale) {
      RUCHE_REQUIRE(u.has_scale_factor() != (u.has_scale_h() || u.has_scale_w()))
          << who << ": give scale_factor or scale_h and scale_w, not both";
      RUCHE_REQUIRE(u.has_scale_factor() || (u.has_scale_h() && u.has_scale_w()))
          << who << ": scale_h and scale_w go together";
      p_.scale_h = u.has_scale_factor() ? u.scale_factor() : u.scale_h();
      p_.scale_w = u.has_scale_factor() ? u.scale_factor() : u.scale_w();
      RUCHE_REQUIRE(p_.scale_h > 0 && p_.scale_w > 0 && std::isfinite(p_.scale_h) &&
                    std::isfinite(p_.scale_w))
          << who << ": scale factors must be positive, got " << p_.scale_h << " and " << p_.scale_w;
    } else {
      RUCHE_REQUIRE(u.has_height() && u.has_width() && u.height() > 0 && u.width() > 0)
          << who << ": height and width must both be given and positive";
      height_ = u.height();
      width_ = u.width();
    }
    p_.mode = u.mode() == proto::UpsampleParameter::BILINEAR ? ops::UpsampleMode::bilinear
                                                             : ops::UpsampleMode::nearest;
    RUCHE_REQUIRE(!(u.has_align_corners() && p_.mode == ops::UpsampleMode::nearest))
        << who << ": align_corners applies to mode BILINEAR only";
    p_.align_corners = u.align_corners();
  }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    const std::string who = "Upsample '" + name() + "'";
    layers::require_bottoms(who, bottoms, 1);
    const Shape& x = bottoms[0];
    layers::require_ndim(who, x, 4, "[N, C, H, W]");
    std::int64_t oh = height_, ow = width_;
    if (p_.scale_h > 0) {  // as F.interpolate: floor(float(size * scale)), in double
      oh = static_cast<std::int64_t>(std::floor(static_cast<double>(x[2]) * p_.scale_h));
      ow = static_cast<std::int64_t>(std::floor(static_cast<double>(x[3]) * p_.scale_w));
    }
    RUCHE_REQUIRE(oh > 0 && ow > 0 && x[2] > 0 && x[3] > 0)
        << who << ": input " << x.str() << " gives an empty output " << oh << "x" << ow;
    y_ = Shape{x[0], x[1], oh, ow};
    return {y_};
  }

  // Per output element: a copy (nearest) or four multiply-adds (bilinear).
  double forward_flops() const override {
    return static_cast<double>(y_.numel()) * (p_.mode == ops::UpsampleMode::bilinear ? 4 : 0);
  }

  void forward(LayerIO& io, const StepContext&) override {
    ops::upsample2d_forward(io.bottom[0], io.top[0], p_);
  }

  void backward(LayerIO& io, const StepContext&) override {
    if (layers::entry(io.bottom_diff, 0).defined()) {
      ops::upsample2d_backward(io.top_diff[0], io.bottom_diff[0], p_);
    }
  }

 private:
  ops::UpsampleParams p_;
  std::int64_t height_ = 0, width_ = 0;
  Shape y_;
};

}  // namespace

std::unique_ptr<Layer> make_upsample_layer(const proto::LayerParameter& p) {
  return std::make_unique<UpsampleLayer>(p);
}

}  // namespace ruche
