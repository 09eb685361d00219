// Net: the layers of a NetParameter in order, their blobs, and the flat parameter and gradient
// buffers (docs/ARCHITECTURE.md "The flat buffer"). Everything is allocated when the net is built.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/graph/memory_plan.h"
#include "engine/layers/layer.h"
#include "engine/proto/ruche.pb.h"

namespace ruche {

// Where a NetParameter came from, so errors can say "net.prototxt:12".
struct NetSource {
  std::string file = "<net>";
  std::vector<int> layer_lines;  // 1-based line of each layer; empty when unknown
};

// Reads a net prototxt, remembering each layer's line.
proto::NetParameter load_net(const std::string& path, NetSource* source);
proto::NetParameter parse_net(const std::string& text, const std::string& where, NetSource* source);

struct NetOptions {
  int batch_size = 1;
  Shape sample_shape;   // one input sample, e.g. [1, 28, 28]; the Input layer's dims win
  int num_classes = 0;  // for classifiers whose num_output is 0
  // One sample's target: empty for a class label (i32 [B]), else f32 [B, target_shape...] (a
  // regression or reconstruction target, engine/train/task.h).
  Shape target_shape;
  Device device = Device::cpu();
  // f32; or bf16 / f16 for autocast on a GPU: activations and their gradients in that type, the
  // flat parameter and gradient buffers (the masters) in f32, low-precision copies of the
  // convolution and inner-product parameters cast from them at every forward.
  DType compute_dtype = DType::f32;
  // No weight decay on batch-norm parameters and biases (the solver's no_decay_bn_bias).
  bool no_decay_bn_bias = false;
  NetSource source;
  // The input blob gets a gradient too (input_grad(), after backward_from_output): the saliency
  // of `ruche visualize`. f32 compute only.
  bool input_grad = false;
  // --sync-bn: batch norm reduces over ranks with ops that take plain tensors, so the layout plan
  // keeps its blobs plain.
  bool sync_bn = false;
  // The layout the net plans its convolution chains in (engine/tensor/layout.h); unset: the
  // device's own, ops::planned_layout. Tests set nhwc to run a CPU net as a 16-bit GPU net runs.
  std::optional<Layout> layout;
  // CPU nets: batch norms after convolutions folded into them for test-phase forwards
  // (engine/graph/fusion.h). Off where every blob is read after a test-phase forward.
  bool fold_batch_norms = true;
};

// One layer's average times over Net::time_layers' iterations (`ruche time`, like `caffe time`).
struct LayerTiming {
  std::string name, type;
  double forward_ms = 0;
  double backward_ms = 0;  // 0 for layers backward skips (no gradient flows through them)
  bool has_backward = false;
};

// One tensor of the net's state, placed in a flat buffer.
struct ParamEntry {
  std::string name;  // PyTorch state_dict name, "layer1.0.conv1.weight"
  Shape shape;
  ParamRole role = ParamRole::weight;
  int layer = 0;            // index into layers()
  std::int64_t offset = 0;  // elements from the start of params() (or buffers())
  std::int64_t count = 0;
  float lr_mult = 1.0f;
  float decay_mult = 1.0f;
  bool frozen = false;      // lr_mult 0: in the trailing region of params(), no gradient
  bool is_integer = false;  // num_batches_tracked: int64 in a state_dict, f32 here
};

// One loss layer of a net: its weight in the net's loss (loss_weight, default 1) and its value.
struct LossTerm {
  int layer = 0;           // index into layers()
  std::string name, type;  // the layer's
  float weight = 1.0f;
  Tensor value;  // [1] f32: this layer's loss after a forward
};

class Net {
 public:
  static std::unique_ptr<Net> build(const proto::NetParameter& param, const NetOptions& options);

  const proto::NetParameter& param() const { return param_; }
  const NetOptions& options() const { return options_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }

  // The flat buffers. params(): trainable parameters in reverse forward order (the last layer's
  // first), then frozen ones. grads(): [0, num_trainable) of the same layout. buffers(): running
  // statistics (and num_batches_tracked).
  Tensor& params() { return params_; }
  Tensor& grads() { return grads_; }
  Tensor& buffers() { return buffers_; }
  std::int64_t num_trainable() const { return num_trainable_; }
  const std::vector<ParamEntry>& param_table() const { return param_table_; }
  const std::vector<ParamEntry>& buffer_table() const { return buffer_table_; }
  // A view of a parameter or buffer by state_dict name; undefined when absent.
  Tensor state_tensor(const std::string& name) const;
  // Every parameter and buffer as (state_dict name, view), in PyTorch's order: layers forward,
  // each layer's parameters then buffers. num_batches_tracked is an f32 view here.
  std::vector<std::pair<std::string, Tensor>> state_dict() const;

  Tensor& input() { return input_; }  // [B, sample...] f32: the data blob (or what is cast to it)
  // [B] i32, or f32 [B, target_shape...]; undefined when Input has one top.
  Tensor& labels() { return labels_; }
  // The blob the main loss reads (logits); a net without a loss: the last layer's first top.
  Tensor& output() { return output_; }
  // [1]: the sum of weight * loss over the loss layers (the one loss itself when its weight is 1);
  // undefined for a net without a loss layer.
  Tensor& loss() { return loss_; }
  // Every loss layer in forward order; empty for a deploy net (no loss layer), which builds for
  // eval, export and time but cannot train.
  const std::vector<LossTerm>& losses() const { return losses_; }
  bool has_loss() const { return !losses_.empty(); }
  // The main head: the loss layer with the highest weight (the first of equal ones); -1 without a
  // loss. Probabilities, accuracy and output() come from it.
  int main_loss_layer() const { return main_loss_layer_; }
  Tensor blob(const std::string& name) const;

  // Runs every layer; the loss lands in loss().
  void forward(const StepContext& ctx);
  // Runs backward in reverse order. With accumulate, parameter gradients are added to grads()
  // rather than overwriting them (micro-batches 2..K of --accumulate K).
  void backward(const StepContext& ctx, bool accumulate);
  // After a forward: backward from the loss layer's input (output()) with `output_grad` (its
  // shape) as its gradient, so parameter gradients and input_grad() hold the gradient of
  // sum(output_grad * output()) (a class score's, with a one-hot output_grad). Test-phase batch
  // norm takes its running statistics as constants, as PyTorch's eval mode does.
  void backward_from_output(const Tensor& output_grad, const StepContext& ctx);
  // The gradient of the input blob (NetOptions::input_grad); undefined without it.
  Tensor input_grad() const;
  // Called during backward, in order, each time a layer's parameter gradients are final:
  // [begin, end) elements of grads(). The reducer launches its buckets from here.
  void set_grad_ready_hook(std::function<void(std::int64_t begin, std::int64_t end)> hook);
  // Called after each layer's forward and backward when set (--timeline): the layer, whether it
  // was backward, and when it started and ended. Unset, it costs nothing.
  using LayerTimer = std::function<void(std::size_t layer, bool backward,
                                        std::chrono::steady_clock::time_point start,
                                        std::chrono::steady_clock::time_point end)>;
  void set_layer_timer(LayerTimer timer) { layer_timer_ = std::move(timer); }

  // Runs one untimed forward and backward pass, then `iterations` more on whatever input() and
  // labels() hold, timing each layer's forward and backward with a steady clock; returns the
  // mean milliseconds per layer, in forward order. The host clock times CPU work only.
  std::vector<LayerTiming> time_layers(int iterations, const StepContext& ctx);

  // Initialises parameters (torch.nn's defaults, or the layers' fillers) and buffers from the
  // counter-based generator keyed by seed.
  void init_params(std::uint64_t seed);

  // The model summary: layers, output shapes, parameters, FLOPs, memory.
  std::string summary() const;
  // The first layer (in forward order) whose output or parameter gradient holds a NaN or Inf,
  // as "layer 'conv2' (Convolution) output"; "" when all are finite.
  std::string first_nonfinite() const;
  double forward_flops() const;  // multiply-adds per batch
  std::size_t activation_bytes() const;
  // CPU nets (not on the reference path, RUCHE_CPU_REFERENCE=1): whether the memory plan
  // applies, and the plan: activations and their gradients in one arena of plan.peak bytes
  // instead of plan.naive (docs/ARCHITECTURE.md "Layouts and the memory plan").
  bool planned() const { return planned_; }
  const MemoryPlan& memory_plan() const { return memory_plan_; }
  // The layout the layout plan keeps convolution chains in; plain when it planned none.
  Layout planned_layout() const { return planned_layout_; }
  // How many blob versions the layout plan keeps out of plain, and the reorders it inserted.
  int blocked_blobs() const;
  int planned_reorders() const;
  int folded_batch_norms() const { return folded_batch_norms_; }

 private:
  Net() = default;
  // One version of a named blob: an in-place layer makes a new version over the same tensors.
  struct Blob {
    std::string name;
    Tensor data, diff;
    int producer = -1;
    int in_place_of = -1;             // the version this one overwrote
    std::vector<int> consumers;       // layers reading this version, in forward order
    std::vector<Tensor> extra_diffs;  // gradients of all readers but the last, summed in backward
    int shadow_of = -1;               // a copy of that version in another layout (the layout plan)
  };
  // y = x after a layer's forward (a blob's shadow in another layout) or backward (the shadow's
  // gradient into the blob's), the gradients in `add` summed into x first.
  struct Reorder {
    Tensor x, y;
    std::vector<Tensor> add;
  };
  // net_plan.cc: the layout plan (may point bottoms at shadows) and the memory plan.
  Layout layout_to_plan() const;  // options_.layout, else the device's; plain where none applies
  void plan_layouts(std::vector<std::vector<int>>& bottoms,
                    const std::vector<std::vector<int>>& tops);
  void connect_shadow_gradients();  // after the layers' io: the shadows' gradients flow back
  void plan_memory();
  // The gradient a reader at layer `reader` writes for blob b: the blob's own for its last reader
  // (the first to run backward), a new buffer summed in before the producer's backward for others.
  Tensor gradient_for_reader(int b, int reader);
  void after_layer(std::size_t li, bool backward);  // reorders, then the plan's poisoning
  void place_params(const std::vector<std::vector<ParamDecl>>& decls);
  void bind_params();
  void make_grad_scratch();
  bool layer_has_trainable(int layer) const;
  void backward_layer(std::size_t li, const StepContext& step, bool accumulate);
  void forward_layer(std::size_t li, const StepContext& ctx);
  void sum_losses();  // loss_ = sum of weight * value
  // step with loss_scale times layer li's loss_weight in `weighted` when li is a loss layer.
  const StepContext& weighted_context(std::size_t li, const StepContext& step,
                                      StepContext& weighted) const;

  proto::NetParameter param_;
  NetOptions options_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::vector<ParamDecl>> decls_;
  std::vector<LayerIO> io_;
  std::vector<Blob> blobs_;
  std::vector<std::vector<int>> tops_;  // blob versions each layer writes
  LayerTimer layer_timer_;
  std::vector<bool> trainable_layer_;  // whether backward must visit the layer
  std::vector<LossTerm> losses_;
  int main_loss_layer_ = -1;
  bool weighted_loss_ = false;  // loss_ is a sum computed after forward
  std::vector<std::pair<std::int64_t, std::int64_t>> layer_grad_range_;  // in grads()
  Tensor params_, grads_, buffers_;
  Tensor grad_scratch_;  // micro-batches 2..K write here, then add to grads_
  std::vector<std::vector<Tensor>> scratch_param_grads_;
  // Each layer's parameters and gradients as views of the flat f32 buffers. io_[li].params and
  // param_grads are these, except for autocast layers, whose io holds low-precision copies.
  std::vector<std::vector<Tensor>> master_params_, master_grads_;
  std::vector<bool> autocast_layer_;
  Tensor input_blob_;  // under autocast: the data blob the layers read, cast from input_
  std::int64_t num_trainable_ = 0, buffer_count_ = 0;
  std::vector<ParamEntry> param_table_, buffer_table_;
  Tensor input_, labels_, output_, loss_;
  std::function<void(std::int64_t, std::int64_t)> grad_ready_;
  bool planned_ = false;
  Layout planned_layout_ = Layout::plain;
  int folded_batch_norms_ = 0;
  std::vector<std::vector<Reorder>> after_forward_, after_backward_;  // by layer
  MemoryPlan memory_plan_;
  // RUCHE_MEMORY_PLAN_POISON=1: the buffers whose life ends at each time (forward of layer l at
  // l, backward at 2L - 1 - l), filled with NaN then; a test of the plan.
  std::vector<std::vector<Tensor>> poison_at_;
};

}  // namespace ruche
