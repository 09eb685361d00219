// Pooling: max or average over kh x kw windows (torch.nn.MaxPool2d / AvgPool2d semantics; stride
// defaults to the kernel size), or over the whole plane with global_pooling.
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

using Method = proto::PoolingParameter::PoolMethod;

class PoolingLayer final : public Layer {
 public:
  explicit PoolingLayer(const proto::LayerParameter& p) : Layer(p) {
    const auto& q = p.pooling_param();
    method_ = q.pool();
    global_ = q.global_pooling();
    if (global_) {
      RUCHE_REQUIRE(!q.has_kernel_size() && !q.has_kernel_h() && !q.has_kernel_w())
          << "Pooling: global_pooling takes no kernel size (the kernel is the whole plane)";
      RUCHE_REQUIRE(q.pad() == 0 && !q.has_pad_h() && !q.has_pad_w())
          << "Pooling: global_pooling takes no padding";
      return;
    }
    RUCHE_REQUIRE(q.has_kernel_size() || (q.has_kernel_h() && q.has_kernel_w()))
        << "Pooling: pooling_param.kernel_size (or kernel_h and kernel_w) is required unless "
           "global_pooling is set";
    const auto [k, s, pad] = layers::pool_window(q);
    pool_.kernel_h = k.h, pool_.kernel_w = k.w;
    pool_.stride_h = s.h, pool_.stride_w = s.w;
    pool_.pad_h = pad.h, pool_.pad_w = pad.w;
    pool_.ceil_mode = q.ceil_mode();
    pool_.count_include_pad = q.count_include_pad();
  }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    layers::require_bottoms("Pooling", bottoms, 1);
    const Shape& x = bottoms[0];
    layers::require_ndim("Pooling", x, 4, "[N, C, H, W]");
    if (global_) {
      pool_.kernel_h = pool_.stride_h = static_cast<int>(x[2]);
      pool_.kernel_w = pool_.stride_w = static_cast<int>(x[3]);
    }
    try {
      y_ = ops::pool2d_output_shape(x, pool_);
      avg_blocked_ = ops::avg_pool2d_takes_blocked(x, pool_);
    } catch (const Error& e) {
      RUCHE_FAIL() << "Pooling: " << e.what();
    }
    return {y_};
  }

  void allocate(Device device) override {
    // Max pooling keeps the argmax of each window for backward.
    if (method_ == proto::PoolingParameter::MAX) indices_ = Tensor::empty(y_, DType::i32, device);
  }

  double forward_flops() const override {
    return static_cast<double>(y_.numel()) * pool_.kernel_h * pool_.kernel_w;
  }
  LayoutUse layout_use() const override {
    const char* kind = method_ == proto::PoolingParameter::MAX ? "max_pool2d"
                       : global_                               ? "global_avg_pool"
                                                               : "avg_pool2d";
    const bool blocked = ops::takes_blocked(std::string(kind) + "_forward") &&
                         ops::takes_blocked(std::string(kind) + "_backward") &&
                         (method_ == proto::PoolingParameter::MAX || global_ || avg_blocked_);
    return blocked ? LayoutUse::follows : LayoutUse::plain;
  }

  void forward(LayerIO& io, const StepContext&) override {
    if (method_ == proto::PoolingParameter::MAX) {
      ops::max_pool2d_forward(io.bottom[0], io.top[0], indices_, pool_);
    } else if (global_) {
      ops::global_avg_pool_forward(io.bottom[0], io.top[0]);
    } else {
      ops::avg_pool2d_forward(io.bottom[0], io.top[0], pool_);
    }
  }

  void backward(LayerIO& io, const StepContext&) override {
    if (!layers::entry(io.bottom_diff, 0).defined()) return;
    if (method_ == proto::PoolingParameter::MAX) {
      ops::max_pool2d_backward(io.top_diff[0], indices_, io.bottom_diff[0], pool_);
    } else if (global_) {
      ops::global_avg_pool_backward(io.top_diff[0], io.bottom_diff[0]);
    } else {
      ops::avg_pool2d_backward(io.top_diff[0], io.bottom_diff[0], pool_);
    }
  }

 private:
  Method method_ = proto::PoolingParameter::MAX;
  bool global_ = false;
  ops::Pool2dParams pool_;
  Shape y_;
  bool avg_blocked_ = false;  // average pooling that the blocked (oneDNN) path divides right
  Tensor indices_;
};

}  // namespace

std::unique_ptr<Layer> make_pooling_layer(const proto::LayerParameter& p) {
  return std::make_unique<PoolingLayer>(p);
}

}  // namespace ruche
