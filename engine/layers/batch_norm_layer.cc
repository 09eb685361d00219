// BatchNorm: torch.nn.BatchNorm2d (or 1d on [N, C]). Training normalises with the batch statistics
// and updates the running ones (momentum 0.1, unbiased variance); test uses the running ones.
// Parameters, in io.params order: weight (gamma), bias (beta) when affine, then the buffers
// running_mean, running_var, num_batches_tracked (a one-element f32 counter).
//
// With ctx.sync_bn (--sync-bn, torch.nn.SyncBatchNorm) training uses the statistics of the global
// batch: forward sums per-channel [sum x, sum x^2, count] over the ranks (one all-reduce; the
// count travels too, so unequal per-rank batches stay exact), backward sums [sum dy,
// sum dy*x_hat, count] (one more, only when dx is needed). dgamma and dbeta stay this rank's sums.
//
// use_global_stats (Caffe's frozen BN): training normalises with the running statistics, as test
// does, and leaves them and the counter alone; the statistics are constants for backward.
#include <cmath>

#include "comm/communicator.h"
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"
#include "ops/ops.h"

namespace ruche {
namespace {

class BatchNormLayer final : public Layer {
 public:
  explicit BatchNormLayer(const proto::LayerParameter& p) : Layer(p) {
    const auto& b = p.batch_norm_param();
    RUCHE_REQUIRE(b.eps() > 0.0f) << "BatchNorm: eps must be positive, got " << b.eps();
    RUCHE_REQUIRE(b.momentum() >= 0.0f && b.momentum() <= 1.0f)
        << "BatchNorm: momentum must be in [0, 1], got " << b.momentum();
    bn_.eps = b.eps();
    bn_.momentum = b.momentum();
    affine_ = b.affine();
    global_stats_ = b.use_global_stats();
  }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    layers::require_bottoms("BatchNorm", bottoms, 1);
    const Shape& x = bottoms[0];
    RUCHE_REQUIRE(x.ndim() == 2 || x.ndim() == 4)
        << "BatchNorm: expected a 2-d input [N, C] or a 4-d input [N, C, H, W], got " << x.str();
    channels_ = x[1];
    x_ = x;
    return {x};
  }

  std::vector<ParamDecl> param_decls() const override {
    const bool zero_init = param().batch_norm_param().zero_init();
    std::vector<ParamDecl> decls;
    auto add = [&](const char* suffix, Shape shape, ParamRole role, float value) {
      ParamDecl d;
      d.suffix = suffix;
      d.shape = shape;
      d.role = role;
      d.filler = layers::constant_filler(value);
      decls.push_back(d);
    };
    // Learnable entries first, buffers after (the Net relies on this order).
    if (affine_) {
      add("weight", Shape{channels_}, ParamRole::norm_weight, zero_init ? 0.0f : 1.0f);
      add("bias", Shape{channels_}, ParamRole::norm_bias, 0.0f);
    }
    add("running_mean", Shape{channels_}, ParamRole::buffer, 0.0f);
    add("running_var", Shape{channels_}, ParamRole::buffer, 1.0f);
    add("num_batches_tracked", Shape{}, ParamRole::buffer, 0.0f);
    return decls;
  }

  void allocate(Device device) override {
    save_mean_ = Tensor::zeros(Shape{channels_}, DType::f32, device);
    save_var_ = Tensor::zeros(Shape{channels_}, DType::f32, device);
    // Adding a resident 1 increments the counter on its own device without a host round trip.
    one_ = Tensor::empty(Shape{}, DType::f32, device);
    one_.fill(1.0f);
    stats_ = Tensor::empty(Shape{2 * channels_ + 1}, DType::f32, device);
    grad_sums_ = Tensor::empty(Shape{2 * channels_ + 1}, DType::f32, device);
  }

  double forward_flops() const override { return 2.0 * static_cast<double>(x_.numel()); }
  LayoutUse layout_use() const override {
    // --sync-bn's and use_global_stats' ops take plain tensors: the net keeps those batch norms
    // plain.
    if (global_stats_) return LayoutUse::plain;
    for (const char* op :
         {"batch_norm_forward_training", "batch_norm_forward_inference", "batch_norm_backward"}) {
      if (!ops::takes_blocked(op)) return LayoutUse::plain;
    }
    return LayoutUse::follows;
  }

  bool absorb_relu() override {
    bn_.fused_relu = true;  // oneDNN's fuse_norm_relu in every forward op below
    return true;
  }

  bool inference_affine(const LayerIO& io, Tensor& scale, Tensor& shift,
                        bool& relu) const override {
    const std::size_t k = affine_ ? 2 : 0;
    if (io.params.size() < k + 2 || !io.params[k].device().is_cpu() ||
        io.bottom[0].dtype() != DType::f32 || scale.numel() != channels_) {
      return false;
    }
    const float* mean = io.params[k].data<float>();
    const float* var = io.params[k + 1].data<float>();
    float* s = scale.data<float>();
    float* t = shift.data<float>();
    for (std::int64_t c = 0; c < channels_; ++c) {
      const float gamma = affine_ ? io.params[0].data<float>()[c] : 1.0f;
      const float beta = affine_ ? io.params[1].data<float>()[c] : 0.0f;
      s[c] = gamma / std::sqrt(var[c] + bn_.eps);
      t[c] = beta - mean[c] * s[c];
    }
    relu = bn_.fused_relu;
    return true;
  }

  void folded_into_producer() override { folded_ = true; }

  void forward(LayerIO& io, const StepContext& ctx) override {
    if (folded_ && ctx.phase != Phase::train) return;  // the convolution wrote the top
    const std::size_t k = affine_ ? 2 : 0;             // where the buffers start
    const Tensor& gamma = affine_ ? io.params[0] : Tensor();
    const Tensor& beta = affine_ ? io.params[1] : Tensor();
    if (ctx.phase == Phase::train && !global_stats_) {
      synced_ = ctx.sync_bn;
      if (synced_) {
        ops::batch_norm_local_stats(io.bottom[0], stats_);
        synced_->all_reduce(BufferView::of(stats_), ReduceOp::sum).wait();
        ops::batch_norm_stats_to_moments(stats_, io.params[k], io.params[k + 1], save_mean_,
                                         save_var_, bn_);
        ops::batch_norm_forward_inference(io.bottom[0], gamma, beta, save_mean_, save_var_,
                                          io.top[0], bn_);
      } else {
        ops::batch_norm_forward_training(io.bottom[0], gamma, beta, io.top[0], io.params[k],
                                         io.params[k + 1], save_mean_, save_var_, bn_);
      }
      ops::axpy(1.0f, one_, io.params[k + 2]);
    } else {
      ops::batch_norm_forward_inference(io.bottom[0], gamma, beta, io.params[k], io.params[k + 1],
                                        io.top[0], bn_);
    }
  }

  // Reads the statistics saved by the last training-phase forward.
  void backward(LayerIO& io, const StepContext& ctx) override {
    Tensor dx = layers::entry(io.bottom_diff, 0);
    Tensor dgamma = affine_ ? layers::entry(io.param_grads, 0) : Tensor();
    Tensor dbeta = affine_ ? layers::entry(io.param_grads, 1) : Tensor();
    if (!dx.defined() && !dgamma.defined() && !dbeta.defined()) return;
    if (global_stats_) {
      backward_inference(io, dx, dgamma, dbeta);
      return;
    }
    RUCHE_CHECK(ctx.sync_bn == synced_)
        << "BatchNorm '" << name() << "': backward's sync_bn differs from the forward's";
    if (synced_) {
      backward_synced(io, dx, dgamma, dbeta);
      return;
    }
    if (ctx.phase != Phase::train) {  // eval mode (saliency): gamma's and beta's are left alone
      backward_eval(io, dx);
      return;
    }
    // The op writes dx always, and dgamma whenever gamma exists: unneeded ones go to scratch.
    if (!dx.defined()) dx = layers::scratch_like(dx_scratch_, io.bottom[0]);
    if (affine_ && !dgamma.defined()) dgamma = layers::scratch_like(dgamma_scratch_, io.params[0]);
    const Tensor& gamma = affine_ ? io.params[0] : Tensor();
    ops::batch_norm_backward(io.top_diff[0], io.bottom[0], gamma, save_mean_, save_var_, dx, dgamma,
                             dbeta, bn_);
  }

 private:
  // The gradient of the global-batch normalisation. Rank r's loss is the mean over its b samples,
  // so its dy is N * dL/dy for the global mean loss L (N ranks, N * b samples), and the reducer
  // averages gradients over N: so every rank computes N * dL/dx, which is
  //   dx = gamma * invstd * (dy - S(dy) / n - x_hat * S(dy * x_hat) / n)
  // with S summed over the ranks and n the global count (torch's SyncBatchNorm), and keeps dgamma
  // = sum(dy * x_hat), dbeta = sum(dy) local: averaged over the ranks they are dL/dgamma, dL/dbeta.
  // dx = gamma / sqrt(running_var + eps) * dy: batch_norm_backward_apply with zero sums; dgamma
  // = sum(dy * x_hat) and dbeta = sum(dy) with x_hat from the running statistics, where wanted.
  void backward_inference(LayerIO& io, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
    const std::size_t k = affine_ ? 2 : 0;
    if (dgamma.defined() || dbeta.defined()) {
      ops::batch_norm_backward_reduce(io.top_diff[0], io.bottom[0], io.params[k], io.params[k + 1],
                                      grad_sums_, dgamma, dbeta, bn_);
    }
    if (!dx.defined()) return;
    std::vector<float> sums(static_cast<std::size_t>(2 * channels_ + 1), 0.0f);
    sums.back() = 1.0f;
    grad_sums_.copy_from(Tensor::from_vector(sums, Shape{2 * channels_ + 1}));
    const Tensor& gamma = affine_ ? io.params[0] : Tensor();
    ops::batch_norm_backward_apply(io.top_diff[0], io.bottom[0], gamma, io.params[k],
                                   io.params[k + 1], grad_sums_, dx, bn_);
  }

  // Eval-mode backward (Net::backward_from_output) on a net planned blocked: its ops take plain
  // tensors, so this rare path reorders around them rather than keeping the whole net plain.
  void backward_eval(LayerIO& io, Tensor& dx) {
    Tensor none;
    if (!dx.defined()) return;
    if (io.bottom[0].is_plain()) {
      backward_inference(io, dx, none, none);
      return;
    }
    LayerIO plain = io;
    const auto plain_copy = [](const Tensor& t) {
      Tensor p = Tensor::empty(t.shape(), t.dtype(), t.device());
      ops::reorder(t, p);
      return p;
    };
    plain.bottom[0] = plain_copy(io.bottom[0]);
    plain.top_diff[0] = plain_copy(io.top_diff[0]);
    Tensor plain_dx = Tensor::empty(dx.shape(), dx.dtype(), dx.device());
    backward_inference(plain, plain_dx, none, none);
    ops::reorder(plain_dx, dx);
  }

  void backward_synced(LayerIO& io, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
    const Tensor& dy = io.top_diff[0];
    const Tensor& x = io.bottom[0];
    ops::batch_norm_backward_reduce(dy, x, save_mean_, save_var_, grad_sums_, dgamma, dbeta, bn_);
    if (!dx.defined()) return;  // the same on every rank: the nets are the same
    synced_->all_reduce(BufferView::of(grad_sums_), ReduceOp::sum).wait();
    const Tensor& gamma = affine_ ? io.params[0] : Tensor();
    ops::batch_norm_backward_apply(dy, x, gamma, save_mean_, save_var_, grad_sums_, dx, bn_);
  }

  ops::BatchNormParams bn_;
  bool affine_ = true;
  bool global_stats_ = false;
  bool folded_ = false;  // into the convolution before it, for test-phase forwards
  std::int64_t channels_ = 0;
  Shape x_;
  Tensor save_mean_, save_var_, one_;
  Tensor stats_, grad_sums_;        // the buffers sync-bn sums over the ranks
  Communicator* synced_ = nullptr;  // the last training forward's ctx.sync_bn
  Tensor dx_scratch_, dgamma_scratch_;
};

}  // namespace

std::unique_ptr<Layer> make_batch_norm_layer(const proto::LayerParameter& p) {
  return std::make_unique<BatchNormLayer>(p);
}

}  // namespace ruche
