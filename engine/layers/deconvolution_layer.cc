// Deconvolution (Caffe's name; torch.nn.ConvTranspose2d): y = conv_transpose(x, w) + b on NCHW,
// configured by convolution_param as in Caffe (num_output = output channels) plus output_padding;
// weights [C_in, C_out/groups, kh, kw] and torch.nn's default initialisation (kaiming_uniform
// with a = sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_out/groups * kh * kw, as
// torch computes it from the weight's second dimension; the same bound for the bias).
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class DeconvolutionLayer final : public Layer {
 public:
  explicit DeconvolutionLayer(const proto::LayerParameter& p) : Layer(p) {
    const auto& c = p.convolution_param();
    const std::string who = "Deconvolution '" + p.name() + "'";
    RUCHE_REQUIRE(c.has_num_output() && c.num_output() > 0)
        << who << ": convolution_param.num_output is required (the output channels)";
    RUCHE_REQUIRE(c.has_kernel_size() || (c.has_kernel_h() && c.has_kernel_w()))
        << who << ": convolution_param.kernel_size (or kernel_h and kernel_w) is required";
    const auto [k, s, pad, op] = layers::conv_window(c);
    RUCHE_REQUIRE(k.h > 0 && k.w > 0)
        << who << ": kernel size must be positive, got " << k.h << "x" << k.w;
    RUCHE_REQUIRE(s.h > 0 && s.w > 0) << who << ": stride must be positive";
    RUCHE_REQUIRE(c.dilation() > 0) << who << ": dilation must be positive";
    RUCHE_REQUIRE(c.group() > 0) << who << ": group must be positive";
    out_ = static_cast<std::int64_t>(c.num_output());
    kh_ = k.h, kw_ = k.w;
    p_.stride_h = s.h, p_.stride_w = s.w;
    p_.pad_h = pad.h, p_.pad_w = pad.w;
    p_.dilation_h = p_.dilation_w = static_cast<int>(c.dilation());
    p_.groups = static_cast<int>(c.group());
    p_.output_padding_h = op.h, p_.output_padding_w = op.w;
    RUCHE_REQUIRE(out_ % p_.groups == 0)
        << who << ": num_output " << out_ << " is not divisible by group " << p_.groups;
    RUCHE_REQUIRE((op.h < s.h || op.h < p_.dilation_h) && (op.w < s.w || op.w < p_.dilation_w))
        << who << ": output_padding " << op.h << "x" << op.w << " must be smaller than the stride "
        << s.h << "x" << s.w << " or the dilation " << p_.dilation_h;
  }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    const std::string who = "Deconvolution '" + name() + "'";
    layers::require_bottoms(who, bottoms, 1);
    const Shape& x = bottoms[0];
    layers::require_ndim(who, x, 4, "[N, C, H, W]");
    RUCHE_REQUIRE(x[1] % p_.groups == 0)
        << who << ": input channels " << x[1] << " are not divisible by group " << p_.groups;
    in_ = x[1];
    x_ = x;
    try {
      y_ = ops::deconv2d_output_shape(x, weight_shape(), p_);
    } catch (const Error& e) {
      RUCHE_FAIL() << who << ": " << e.what();
    }
    return {y_};
  }

  std::vector<ParamDecl> param_decls() const override {
    const auto& c = param().convolution_param();
    // torch's fan_in of a [C_in, C_out/groups, kh, kw] weight: its dimension 1 times the kernel.
    const std::int64_t fan_in = out_ / p_.groups * kh_ * kw_;
    const std::int64_t fan_out = in_ * kh_ * kw_;
    return layers::weight_and_bias(c, weight_shape(), out_, fan_in, fan_out);
  }

  bool params_in_compute_dtype() const override { return true; }

  // Every input element meets every weight of its group once: N * C_in * H * W * (O/g) * kh * kw.
  double forward_flops() const override {
    // NOLINTNEXTLINE(bugprone-integer-division): exact, out_ is a multiple of groups (setup checks)
    return static_cast<double>(x_.numel()) * static_cast<double>(out_ / p_.groups * kh_ * kw_);
  }

  void forward(LayerIO& io, const StepContext&) override {
    ops::deconv2d_forward(io.bottom[0], io.params[0], layers::entry(io.params, 1), io.top[0], p_);
  }

  void backward(LayerIO& io, const StepContext&) override {
    const Tensor& dy = io.top_diff[0];
    if (layers::entry(io.bottom_diff, 0).defined()) {
      ops::deconv2d_backward_data(dy, io.params[0], io.bottom_diff[0], p_);
    }
    const Tensor& dw = layers::entry(io.param_grads, 0);
    Tensor db = layers::entry(io.param_grads, 1);
    if (!dw.defined() && !db.defined()) return;  // frozen
    Tensor dw_out = dw.defined() ? dw : layers::scratch_like(dw_scratch_, io.params[0]);
    ops::deconv2d_backward_weights(io.bottom[0], dy, dw_out, db, p_);
  }

 private:
  Shape weight_shape() const { return Shape{in_, out_ / p_.groups, kh_, kw_}; }
  std::int64_t out_ = 0, in_ = 0, kh_ = 0, kw_ = 0;
  ops::Deconv2dParams p_;
  Shape x_, y_;
  Tensor dw_scratch_;
};

}  // namespace

std::unique_ptr<Layer> make_deconvolution_layer(const proto::LayerParameter& p) {
  return std::make_unique<DeconvolutionLayer>(p);
}

}  // namespace ruche
