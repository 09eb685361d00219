// A layer: one kind of computation in a Net (Caffe's Layer). It derives its output shapes and
// declares its parameters when the net is built; forward and backward call ops/ only, on tensors
// the Net allocated once (the static memory plan), so a step allocates nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/proto/ruche.pb.h"
#include "engine/tensor/tensor.h"

namespace ruche {

class Communicator;  // comm/communicator.h

enum class Phase { train, test };

// What a step tells the layers.
struct StepContext {
  Phase phase = Phase::train;
  std::uint64_t seed = 1;  // the run's seed: dropout streams derive from it
  std::uint32_t epoch = 0;
  std::uint32_t step = 0;  // global micro-batch counter: dropout masks differ per step
  // --sync-bn: batch norm reduces its batch statistics over these ranks; null: this rank's only.
  Communicator* sync_bn = nullptr;
  // The loss's gradient is this instead of 1 (fp16's dynamic loss scaling); the trainer divides
  // the parameter gradients by it before the optimizer step.
  float loss_scale = 1.0f;
  // Checks whose failure the forward would learn only by waiting for the device (a loss's label
  // range on CUDA) are left on the device instead (Layer::deferred_check): the trainer reads them
  // with the step's one wait.
  bool defer_checks = false;
};

// How a parameter is treated by the optimizer and the state_dict.
enum class ParamRole : std::uint8_t {
  weight,       // conv / linear weight: decayed
  bias,         // conv / linear bias
  norm_weight,  // batch-norm gamma
  norm_bias,    // batch-norm beta
  buffer,       // running statistics: saved and broadcast, never optimized
};

// A parameter a layer owns, named as in a PyTorch state_dict: "<layer>.<suffix>".
struct ParamDecl {
  std::string suffix;  // weight, bias, running_mean, running_var, num_batches_tracked
  Shape shape;
  ParamRole role = ParamRole::weight;
  DType dtype = DType::f32;
  proto::FillerParameter filler;         // type "default" = torch.nn's initialisation for the layer
  std::int64_t fan_in = 0, fan_out = 0;  // for Kaiming / Xavier
};

// The tensors one layer reads and writes, fixed when the Net is built. Entries of bottom_diff are
// undefined where no gradient is needed (the data, the labels, a frozen branch).
struct LayerIO {
  std::vector<Tensor> bottom, top, bottom_diff, top_diff;
  std::vector<Tensor> params, param_grads;  // in param_decls() order; grads undefined for buffers
                                            // and frozen parameters
};

class Layer {
 public:
  explicit Layer(const proto::LayerParameter& p) : param_(p) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  const proto::LayerParameter& param() const { return param_; }
  const std::string& name() const { return param_.name(); }
  const std::string& type() const { return param_.type(); }

  // The tops' shapes from the bottoms' (batch dimension included); throws ruche::Error when they
  // do not fit (the Net adds the file and line). `num_classes` fills a classifier's width.
  virtual std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int num_classes) = 0;
  // The parameters, valid after reshape().
  virtual std::vector<ParamDecl> param_decls() const { return {}; }
  // Workspaces (saved statistics, masks, indices) on `device`, after reshape().
  virtual void allocate(Device device) { (void)device; }
  // Whether top may be bottom (ReLU, Dropout: Caffe's in-place layers).
  virtual bool in_place_ok() const { return false; }
  // Under autocast (bf16/fp16), whether the layer computes with low-precision copies of its
  // parameters (convolution, inner product: tensor-core GEMMs) rather than the fp32 masters
  // (batch norm keeps fp32 parameters and statistics). The Net makes and casts the copies.
  virtual bool params_in_compute_dtype() const { return false; }
  // How many tops (bottoms) the layer takes; -1: any number.
  virtual int num_bottoms() const { return 1; }
  virtual int num_tops() const { return 1; }
  // Multiply-adds of one forward pass, for the model summary.
  virtual double forward_flops() const { return 0; }
  // Which tensor layouts (engine/tensor/layout.h) the layer's ops take, for the CPU net's layout
  // plan. plain, the default: NCHW only (a layer added later works unchanged; the net reorders
  // its blocked inputs). follows: its bottoms in any one layout, its tops in the same (batch norm,
  // ReLU, pooling, sums). blocks: any input layout, its top in the CPU's blocked layout
  // (convolution). A layer says so only where ops::takes_blocked says it of every op it calls.
  enum class LayoutUse { plain, follows, blocks };
  virtual LayoutUse layout_use() const { return LayoutUse::plain; }
  // Fusion (CPU nets, engine/graph/fusion.h): a ReLU written in place on this layer's only top,
  // read by nothing else, may run inside this layer's forward. Returns whether it will.
  virtual bool absorb_relu() { return false; }
  // The ReLU's side: its producer applies it, so forward has nothing left to do (backward runs).
  virtual void relu_absorbed() {}
  // Inference folding (CPU nets, engine/graph/fusion.h): a batch norm that alone reads this
  // layer's only top may run inside this layer's test-phase forwards, folded into its weights;
  // bn_io is the batch norm's (the folded output goes to its top). Returns whether it will.
  virtual bool absorb_batch_norm(const Layer& /*bn*/, const LayerIO& /*bn_io*/) { return false; }
  // The batch norm's side: its test-phase forward as y = x * scale + shift per channel, then a
  // ReLU when `relu` (f32 [C] each, on the CPU). False when it is not that.
  virtual bool inference_affine(const LayerIO& /*io*/, Tensor& /*scale*/, Tensor& /*shift*/,
                                bool& /*relu*/) const {
    return false;
  }
  // ... and its test-phase forward is then empty (backward runs unchanged).
  virtual void folded_into_producer() {}

  // With ctx.defer_checks: the device tensor (i64 [1]) a forward leaves its check's result in,
  // or undefined when it defers none; deferred_check_failure says what the value means: the error
  // the forward would have thrown, or "" when the check passed.
  virtual Tensor deferred_check() const { return {}; }
  virtual std::string deferred_check_failure(std::int64_t /*value*/) const { return {}; }

  virtual void forward(LayerIO& io, const StepContext& ctx) = 0;
  // Fills io.bottom_diff (where defined) and io.param_grads (where defined) from io.top_diff,
  // overwriting them (the Net accumulates where it must).
  virtual void backward(LayerIO& io, const StepContext& ctx) = 0;

 private:
  proto::LayerParameter param_;
};

// Creates the layer for p.type(); an unknown type is an error listing the known ones.
std::unique_ptr<Layer> create_layer(const proto::LayerParameter& p);
// The layer types create_layer knows, sorted.
std::vector<std::string> known_layer_types();

}  // namespace ruche
