// Convolution: y = conv(x, w) + b on NCHW, weights [O, C/groups, kh, kw] as torch.nn.Conv2d, with
// torch.nn's default initialisation unless the prototxt names fillers.
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class ConvolutionLayer final : public Layer {
 public:
  explicit ConvolutionLayer(const proto::LayerParameter& p) : Layer(p) {
    const auto& c = p.convolution_param();
    RUCHE_REQUIRE(c.has_num_output() && c.num_output() > 0)
        << "Convolution: convolution_param.num_output is required (the number of filters)";
    RUCHE_REQUIRE(c.has_kernel_size() || (c.has_kernel_h() && c.has_kernel_w()))
        << "Convolution: convolution_param.kernel_size (or kernel_h and kernel_w) is required";
    const auto [k, s, pad, output_padding] = layers::conv_window(c);
    RUCHE_REQUIRE(k.h > 0 && k.w > 0)
        << "Convolution: kernel size must be positive, got " << k.h << "x" << k.w;
    RUCHE_REQUIRE(s.h > 0 && s.w > 0) << "Convolution: stride must be positive";
    RUCHE_REQUIRE(c.dilation() > 0) << "Convolution: dilation must be positive";
    RUCHE_REQUIRE(c.group() > 0) << "Convolution: group must be positive";
    out_ = static_cast<std::int64_t>(c.num_output());
    kh_ = k.h, kw_ = k.w;
    conv_.stride_h = s.h, conv_.stride_w = s.w;
    conv_.pad_h = pad.h, conv_.pad_w = pad.w;
    conv_.dilation_h = conv_.dilation_w = static_cast<int>(c.dilation());
    conv_.groups = static_cast<int>(c.group());
    RUCHE_REQUIRE(out_ % conv_.groups == 0)
        << "Convolution: num_output " << out_ << " is not divisible by group " << conv_.groups;
  }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    layers::require_bottoms("Convolution", bottoms, 1);
    const Shape& x = bottoms[0];
    layers::require_ndim("Convolution", x, 4, "[N, C, H, W]");
    RUCHE_REQUIRE(x[1] % conv_.groups == 0)
        << "Convolution: input channels " << x[1] << " are not divisible by group " << conv_.groups;
    in_ = x[1];
    const Shape w{out_, in_ / conv_.groups, kh_, kw_};
    try {
      y_ = ops::conv2d_output_shape(x, w, conv_);
    } catch (const Error& e) {
      RUCHE_FAIL() << "Convolution: " << e.what();
    }
    return {y_};
  }

  std::vector<ParamDecl> param_decls() const override {
    const auto& c = param().convolution_param();
    const std::int64_t fan_in = in_ / conv_.groups * kh_ * kw_;
    const std::int64_t fan_out = out_ / conv_.groups * kh_ * kw_;
    return layers::weight_and_bias(c, Shape{out_, in_ / conv_.groups, kh_, kw_}, out_, fan_in,
                                   fan_out);
  }

  bool params_in_compute_dtype() const override { return true; }
  LayoutUse layout_use() const override {
    const bool blocked = ops::takes_blocked("conv2d_forward") &&
                         ops::takes_blocked("conv2d_backward_data") &&
                         ops::takes_blocked("conv2d_backward_weights");
    return blocked ? LayoutUse::blocks : LayoutUse::plain;
  }

  double forward_flops() const override {
    // NOLINTNEXTLINE(bugprone-integer-division): exact, in_ is a multiple of groups (setup checks)
    return static_cast<double>(y_.numel()) * static_cast<double>(in_ / conv_.groups * kh_ * kw_);
  }

  bool absorb_relu() override {
    conv_.fused_relu = true;  // a oneDNN post-op: the ReLU in the convolution's pass over y
    return true;
  }

  bool absorb_batch_norm(const Layer& bn, const LayerIO& bn_io) override {
    Tensor scale = Tensor::empty(Shape{out_}), shift = Tensor::empty(Shape{out_});
    bool relu = false;
    if (conv_.fused_relu || bn_io.top.size() != 1 ||
        !bn.inference_affine(bn_io, scale, shift, relu)) {
      return false;
    }
    bn_ = &bn;
    bn_io_ = &bn_io;
    return true;
  }

  void forward(LayerIO& io, const StepContext& ctx) override {
    if (bn_ != nullptr && ctx.phase != Phase::train) {
      forward_folded(io);
      return;
    }
    ops::conv2d_forward(io.bottom[0], io.params[0], layers::entry(io.params, 1), io.top[0], conv_);
  }

  void backward(LayerIO& io, const StepContext&) override {
    const Tensor& dy = io.top_diff[0];
    if (layers::entry(io.bottom_diff, 0).defined()) {
      ops::conv2d_backward_data(dy, io.params[0], io.bottom_diff[0], conv_);
    }
    const Tensor& dw = layers::entry(io.param_grads, 0);
    Tensor db = layers::entry(io.param_grads, 1);
    if (!dw.defined() && !db.defined()) return;  // frozen
    // The op always writes dw; a frozen weight beside a trained bias writes into scratch.
    Tensor dw_out = dw.defined() ? dw : layers::scratch_like(dw_scratch_, io.params[0]);
    ops::conv2d_backward_weights(io.bottom[0], dy, dw_out, db, conv_);
  }

 private:
  // The batch norm after it in one pass: w * s and b * s + t per output channel (s, t: the batch
  // norm's inference scale and shift), into the batch norm's top. Weights change every step, so
  // they are folded at every test-phase forward: O(weights), next to the convolution's O(work).
  void forward_folded(const LayerIO& io) {
    if (!bn_scale_.defined()) {
      for (Tensor* t : {&bn_scale_, &bn_shift_, &folded_b_}) *t = Tensor::empty(Shape{out_});
    }
    Tensor& scale = bn_scale_;
    Tensor& shift = bn_shift_;
    ops::Conv2dParams p = conv_;
    RUCHE_CHECK(bn_->inference_affine(*bn_io_, scale, shift, p.fused_relu))
        << "Convolution '" << name() << "': the batch norm folded into it has no inference affine";
    Tensor& w = layers::scratch_like(folded_w_, io.params[0]);
    Tensor& b = folded_b_;
    const std::int64_t per_output = io.params[0].numel() / out_;
    const float* w0 = io.params[0].data<float>();
    const Tensor& bias = layers::entry(io.params, 1);
    for (std::int64_t o = 0; o < out_; ++o) {
      const float s = scale.data<float>()[o];
      for (std::int64_t i = o * per_output; i < (o + 1) * per_output; ++i) {
        w.data<float>()[i] = w0[i] * s;
      }
      const float b0 = bias.defined() ? bias.data<float>()[o] : 0.0f;
      b.data<float>()[o] = b0 * s + shift.data<float>()[o];
    }
    Tensor y = bn_io_->top[0];  // a handle: the batch norm's top itself
    ops::conv2d_forward(io.bottom[0], w, b, y, p);
  }

  std::int64_t out_ = 0, in_ = 0, kh_ = 0, kw_ = 0;
  ops::Conv2dParams conv_;
  Shape y_;
  Tensor dw_scratch_;
  const Layer* bn_ = nullptr;  // the batch norm folded in at test-phase forwards, and its io
  const LayerIO* bn_io_ = nullptr;
  Tensor bn_scale_, bn_shift_, folded_w_, folded_b_;
};

}  // namespace

std::unique_ptr<Layer> make_convolution_layer(const proto::LayerParameter& p) {
  return std::make_unique<ConvolutionLayer>(p);
}

}  // namespace ruche
