#include "engine/graph/net.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <sstream>

#include "engine/graph/fusion.h"
#include "engine/graph/init.h"
#include "engine/interop/caffe_import.h"
#include "engine/proto/text_format.h"
#include "ops/cuda/runtime.h"
#include "ops/ops.h"

namespace ruche {
namespace {

using google::protobuf::TextFormat;

std::string where_of(const NetSource& source, int layer, const proto::LayerParameter& p) {
  std::ostringstream at;
  at << source.file;
  if (layer < static_cast<int>(source.layer_lines.size())) {
    at << ":" << source.layer_lines[static_cast<std::size_t>(layer)];
  }
  at << ": layer '" << p.name() << "' (" << p.type() << ")";
  return at.str();
}

bool is_loss(const std::string& type) {
  return type.size() > 4 && type.compare(type.size() - 4, 4, "Loss") == 0;
}

Shape with_batch(int batch, const Shape& sample) {
  Shape s{batch};
  for (std::int64_t d : sample) s.push_back(d);
  return s;
}

}  // namespace

proto::NetParameter parse_net(const std::string& text, const std::string& where,
                              NetSource* source) {
  proto::NetParameter net;
  TextFormat::ParseInfoTree locations;
  // A Caffe net fails to parse as ruche's; said so in one line rather than as a field error.
  const std::string caffe_field = caffe_only_field(text);
  RUCHE_REQUIRE(caffe_field.empty())
      << where << ": a Caffe net ('" << caffe_field << "' is Caffe's), not ruche's: run `ruche "
      << "import caffe " << where << " -o DIR` and use DIR/net.prototxt";
  parse_prototxt(text, where, net, &locations);
  if (source) {
    source->file = where;
    source->layer_lines.clear();
    const auto* field = proto::NetParameter::descriptor()->FindFieldByName("layer");
    for (int i = 0; i < net.layer_size(); ++i) {
      source->layer_lines.push_back(locations.GetLocation(field, i).line + 1);
    }
  }
  return net;
}

proto::NetParameter load_net(const std::string& path, NetSource* source) {
  return parse_net(read_text_file(path), path, source);
}

std::unique_ptr<Net> Net::build(const proto::NetParameter& param, const NetOptions& options) {
  std::unique_ptr<Net> net(new Net());
  net->param_ = param;
  net->options_ = options;
  RUCHE_REQUIRE(options.batch_size > 0)
      << "batch size must be positive, got " << options.batch_size;
  RUCHE_REQUIRE(param.layer_size() > 0) << options.source.file << ": the net has no layers";
  for (int k : param.eval_top_k()) {
    RUCHE_REQUIRE(k >= 1) << options.source.file << ": eval_top_k " << k << " is not a k >= 1";
  }
  // CPU nets get the memory plan (net_plan.cc); their blobs are placed by the plan, so nothing is
  // touched (or counted in the peak RSS) before it. The layout plan is the device's.
  net->planned_ = options.device.is_cpu() && !ops::cpu_reference_path();
  const auto blob_tensor = [&](const Shape& shape, DType dtype) {
    return net->planned_ ? Tensor::empty(shape, dtype, options.device)
                         : Tensor::zeros(shape, dtype, options.device);
  };

  std::map<std::string, int> current;  // blob name -> index of its newest version in blobs_
  std::vector<std::vector<int>> bottoms(static_cast<std::size_t>(param.layer_size()));
  std::vector<std::vector<int>> tops(bottoms.size());
  std::vector<std::vector<ParamDecl>> decls(bottoms.size());
  std::vector<bool> trainable_layer(bottoms.size(), false);

  // Pass 1: create layers, resolve blobs, derive shapes, collect parameter declarations.
  for (int li = 0; li < param.layer_size(); ++li) {
    const auto& lp = param.layer(li);
    const std::string where = where_of(options.source, li, lp);
    try {
      RUCHE_REQUIRE(!lp.name().empty()) << "every layer needs a name";
      auto layer = create_layer(lp);
      auto& bl = bottoms[static_cast<std::size_t>(li)];
      std::vector<Shape> in_shapes;
      for (const auto& name : lp.bottom()) {
        const auto it = current.find(name);
        if (it == current.end()) {
          std::string known;
          for (const auto& [blob, index] : current)
            known.append(known.empty() ? "" : ", ").append(blob);
          RUCHE_FAIL() << "bottom '" << name << "' is not produced by any earlier layer (blobs so "
                       << "far: " << (known.empty() ? "none" : known) << ")";
        }
        bl.push_back(it->second);
        in_shapes.push_back(net->blobs_[static_cast<std::size_t>(it->second)].data.shape());
      }
      if (layer->num_bottoms() >= 0) {
        RUCHE_REQUIRE(lp.bottom_size() == layer->num_bottoms())
            << "expects " << layer->num_bottoms() << " bottom(s), got " << lp.bottom_size();
      }
      if (lp.type() == "Input") {
        // The Net tells Input what a batch is: [B, sample...] and the labels [B].
        Shape sample = options.sample_shape;
        if (sample.ndim() == 0)
          sample = Shape(lp.input_param().dim().begin(), lp.input_param().dim().end());
        RUCHE_REQUIRE(sample.ndim() > 0)
            << "the input shape is unknown: set input_param { dim: ... } or give a dataset";
        in_shapes = {with_batch(options.batch_size, sample),
                     options.target_shape.ndim()
                         ? with_batch(options.batch_size, options.target_shape)
                         : Shape{options.batch_size}};
      }
      const std::vector<Shape> out_shapes = layer->reshape(in_shapes, options.num_classes);
      RUCHE_REQUIRE(static_cast<int>(out_shapes.size()) >= lp.top_size())
          << "produces " << out_shapes.size() << " top(s), " << lp.top_size() << " named";
      RUCHE_REQUIRE(lp.top_size() > 0) << "names no top (a loss's value needs one too)";

      for (int t = 0; t < lp.top_size(); ++t) {
        const std::string& name = lp.top(t);
        const auto in_place = std::find(lp.bottom().begin(), lp.bottom().end(), name);
        Blob blob;
        blob.name = name;
        blob.producer = li;
        if (in_place != lp.bottom().end() && !layer->in_place_ok()) {
          // Written in place (Caffe's BatchNorm, Scale) by a layer whose backward needs its input:
          // the top is a new version of the name with its own tensors; later layers read it.
          blob.data = blob_tensor(out_shapes[static_cast<std::size_t>(t)], options.compute_dtype);
        } else if (in_place != lp.bottom().end()) {
          const int old = current.at(name);
          Blob& prev = net->blobs_[static_cast<std::size_t>(old)];
          RUCHE_REQUIRE(prev.consumers.empty())
              << "runs in place on '" << name << "', which layer '"
              << param.layer(prev.consumers.front()).name()
              << "' also reads: backward would see overwritten values";
          blob.data = prev.data;  // same storage: the in-place chain shares tensors
          blob.in_place_of = old;
        } else {
          RUCHE_REQUIRE(!current.count(name))
              << "top '" << name << "' is already produced by an earlier layer";
          const bool label = lp.type() == "Input" && t == 1;
          // Under autocast every activation is in the compute dtype but the labels and losses.
          const DType dtype = label && options.target_shape.ndim() ? DType::f32
                              : label                              ? DType::i32
                              : is_loss(lp.type())                 ? DType::f32
                                                                   : options.compute_dtype;
          blob.data = blob_tensor(out_shapes[static_cast<std::size_t>(t)], dtype);
        }
        current[name] = static_cast<int>(net->blobs_.size());
        tops[static_cast<std::size_t>(li)].push_back(static_cast<int>(net->blobs_.size()));
        net->blobs_.push_back(std::move(blob));
      }
      for (std::size_t b = 0; b < bl.size(); ++b) {
        net->blobs_[static_cast<std::size_t>(bl[b])].consumers.push_back(li);
      }
      decls[static_cast<std::size_t>(li)] = layer->param_decls();
      int learnable = 0;
      for (const auto& d : decls[static_cast<std::size_t>(li)]) {
        if (d.role != ParamRole::buffer) ++learnable;
      }
      RUCHE_REQUIRE(lp.param_size() <= learnable)
          << "has " << lp.param_size() << " param { } blocks but " << learnable
          << " learnable parameter(s)";
      layer->allocate(options.device);
      net->layers_.push_back(std::move(layer));
    } catch (const Error& e) {
      RUCHE_FAIL() << where << ": " << e.what();
    }
  }

  if (options.device.is_cpu() && !ops::cpu_reference_path()) {
    fuse_relus(param, net->layers_, bottoms, tops);  // conv / BN + in-place ReLU: one pass
  }
  net->after_forward_.resize(bottoms.size());
  net->after_backward_.resize(bottoms.size());
  net->plan_layouts(bottoms, tops);

  // The losses and what the main one reads. Several losses train on their weighted sum; the one
  // with the highest weight is the main head (probabilities, accuracy, output()).
  float main_weight = -1.0f;
  for (int li = 0; li < param.layer_size(); ++li) {
    const auto& lp = param.layer(li);
    if (!is_loss(lp.type())) continue;
    RUCHE_REQUIRE(lp.loss_weight_size() <= 1)
        << where_of(options.source, li, lp) << ": one loss_weight (the layer has one top), got "
        << lp.loss_weight_size();
    LossTerm term;
    term.layer = li;
    term.name = lp.name();
    term.type = lp.type();
    term.weight = lp.loss_weight_size() ? lp.loss_weight(0) : 1.0f;
    RUCHE_REQUIRE(std::isfinite(term.weight) && term.weight >= 0)
        << where_of(options.source, li, lp) << ": loss_weight must be finite and >= 0, got "
        << term.weight;
    term.value = net->blobs_[static_cast<std::size_t>(tops[static_cast<std::size_t>(li)][0])].data;
    if (term.weight > main_weight) {
      main_weight = term.weight;
      net->main_loss_layer_ = li;
    }
    net->losses_.push_back(term);
  }
  if (!net->losses_.empty()) {
    const int main = net->main_loss_layer_;
    net->output_ =
        net->blobs_[static_cast<std::size_t>(bottoms[static_cast<std::size_t>(main)][0])].data;
    net->weighted_loss_ = net->losses_.size() > 1 || net->losses_[0].weight != 1.0f;
    net->loss_ = net->weighted_loss_ ? Tensor::zeros({1}, DType::f32, options.device)
                                     : net->losses_[0].value;
  } else {
    // A deploy net: no loss; its output is the last layer's first top.
    for (int li = param.layer_size(); li-- > 0;) {
      if (tops[static_cast<std::size_t>(li)].empty()) continue;
      net->output_ =
          net->blobs_[static_cast<std::size_t>(tops[static_cast<std::size_t>(li)][0])].data;
      break;
    }
  }
  RUCHE_REQUIRE(param.layer(0).type() == "Input")
      << where_of(options.source, 0, param.layer(0)) << ": the first layer must be Input";
  net->input_ = net->blobs_[static_cast<std::size_t>(tops[0][0])].data;
  if (options.compute_dtype != DType::f32) {
    RUCHE_REQUIRE(options.device.is_cuda())
        << options.source.file << ": " << dtype_name(options.compute_dtype)
        << " autocast runs on a CUDA device; the CPU computes in f32";
    for (int li = 0; li < param.layer_size(); ++li) {
      const std::string& type = param.layer(li).type();
      RUCHE_REQUIRE(!is_loss(type) || type == "SoftmaxWithLoss")
          << where_of(options.source, li, param.layer(li)) << ": " << type
          << " compares with f32 targets; train it with --precision fp32 or tf32";
    }
    net->input_blob_ = net->input_;  // the loader fills an f32 batch, cast to it in forward
    net->input_ = Tensor::zeros(net->input_blob_.shape(), DType::f32, options.device);
  }
  RUCHE_REQUIRE(!options.input_grad || options.compute_dtype == DType::f32)
      << options.source.file << ": the input's gradient is computed in f32 only";
  if (tops[0].size() > 1) net->labels_ = net->blobs_[static_cast<std::size_t>(tops[0][1])].data;

  net->place_params(decls);

  // Which blobs need a gradient: those downstream of a trainable parameter.
  std::vector<bool> needs_grad(net->blobs_.size(), false);
  for (std::size_t li = 0; li < bottoms.size(); ++li) {
    bool any = net->layer_has_trainable(static_cast<int>(li));
    for (int b : bottoms[li]) {
      const int source = net->blobs_[static_cast<std::size_t>(b)].shadow_of;  // the layout plan's
      any = any || needs_grad[static_cast<std::size_t>(source >= 0 ? source : b)];
    }
    for (int t : tops[li]) needs_grad[static_cast<std::size_t>(t)] = any;
    trainable_layer[li] = any;
    if (li == 0 && options.input_grad) needs_grad[static_cast<std::size_t>(tops[0][0])] = true;
  }
  for (std::size_t b = 0; b < net->blobs_.size(); ++b) {
    const int source = net->blobs_[b].shadow_of;
    if (source >= 0) needs_grad[b] = needs_grad[static_cast<std::size_t>(source)];
  }
  for (std::size_t b = 0; b < net->blobs_.size(); ++b) {
    Blob& blob = net->blobs_[b];
    if (!needs_grad[b] || (blob.producer >= 0 && is_loss(param.layer(blob.producer).type()))) {
      continue;  // a loss: its gradient is the seed the loss layer applies itself
    }
    if (blob.in_place_of >= 0)
      blob.diff = net->blobs_[static_cast<std::size_t>(blob.in_place_of)].diff;
    if (!blob.diff.defined()) {
      blob.diff = blob_tensor(blob.data.shape(), blob.data.dtype()).with_layout(blob.data.layout());
    }
  }

  // Each layer's view of its blobs. A blob read by several layers gets one gradient buffer per
  // extra reader; the Net adds them up before the producer's backward.
  net->io_.resize(bottoms.size());
  for (std::size_t li = 0; li < bottoms.size(); ++li) {
    LayerIO& io = net->io_[li];
    for (int b : bottoms[li]) {
      Blob& blob = net->blobs_[static_cast<std::size_t>(b)];
      io.bottom.push_back(blob.data);
      io.bottom_diff.push_back(
          blob.diff.defined() ? net->gradient_for_reader(b, static_cast<int>(li)) : Tensor());
    }
    for (int t : tops[li]) {
      io.top.push_back(net->blobs_[static_cast<std::size_t>(t)].data);
      io.top_diff.push_back(net->blobs_[static_cast<std::size_t>(t)].diff);
    }
  }
  net->bind_params();
  if (net->planned_ && options.fold_batch_norms && options.compute_dtype == DType::f32) {
    net->folded_batch_norms_ = fold_batch_norms(net->layers_, net->io_, bottoms, tops);
  }
  net->tops_ = std::move(tops);
  net->trainable_layer_ = std::move(trainable_layer);
  net->connect_shadow_gradients();
  if (net->planned_) net->plan_memory();
  return net;
}

bool Net::layer_has_trainable(int layer) const {
  for (const auto& e : param_table_) {
    if (e.layer == layer && !e.frozen) return true;
  }
  return false;
}

void Net::place_params(const std::vector<std::vector<ParamDecl>>& decls) {
  // Trainable parameters in reverse layer order, then frozen ones; buffers on their own.
  std::vector<ParamEntry> trainable, frozen;
  for (int li = static_cast<int>(decls.size()) - 1; li >= 0; --li) {
    const auto& lp = param_.layer(li);
    int learnable = 0;
    for (const auto& d : decls[static_cast<std::size_t>(li)]) {
      ParamEntry e;
      e.name = lp.name() + "." + d.suffix;
      e.shape = d.shape;
      e.role = d.role;
      e.layer = li;
      e.count = d.shape.numel();
      e.is_integer = d.dtype != DType::f32;
      if (d.role == ParamRole::buffer) {
        e.offset = buffer_count_;
        buffer_count_ += e.count;
        buffer_table_.push_back(e);
        continue;
      }
      if (learnable < lp.param_size()) {
        e.lr_mult = lp.param(learnable).lr_mult();
        e.decay_mult = lp.param(learnable).decay_mult();
      }
      ++learnable;
      e.frozen = e.lr_mult == 0.0f;
      (e.frozen ? frozen : trainable).push_back(e);
    }
  }
  std::int64_t offset = 0;
  for (auto& e : trainable) e.offset = std::exchange(offset, offset + e.count);
  num_trainable_ = offset;
  for (auto& e : frozen) e.offset = std::exchange(offset, offset + e.count);
  param_table_ = std::move(trainable);
  param_table_.insert(param_table_.end(), frozen.begin(), frozen.end());
  for (const auto& d : decls) decls_.push_back(d);

  const Device device = options_.device;
  params_ =
      Tensor::zeros({std::max<std::int64_t>(offset, 1)}, DType::f32, device).narrow(0, 0, offset);
  grads_ = Tensor::zeros({std::max<std::int64_t>(num_trainable_, 1)}, DType::f32, device)
               .narrow(0, 0, num_trainable_);
  buffers_ = Tensor::zeros({std::max<std::int64_t>(buffer_count_, 1)}, DType::f32, device)
                 .narrow(0, 0, buffer_count_);
}

void Net::bind_params() {
  // io.params follows each layer's param_decls() order; look the entries up by name.
  std::map<std::string, const ParamEntry*> learnable, buffers;
  for (const auto& e : param_table_) learnable[e.name] = &e;
  for (const auto& e : buffer_table_) buffers[e.name] = &e;
  layer_grad_range_.assign(layers_.size(), {0, 0});
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    LayerIO& io = io_[li];
    std::int64_t begin = num_trainable_, end = 0;
    for (const auto& d : decls_[li]) {
      const std::string name = param_.layer(static_cast<int>(li)).name() + "." + d.suffix;
      if (d.role == ParamRole::buffer) {
        const ParamEntry& e = *buffers.at(name);
        io.params.push_back(buffers_.narrow(0, e.offset, e.count).view(e.shape));
        io.param_grads.emplace_back();
        continue;
      }
      const ParamEntry& e = *learnable.at(name);
      io.params.push_back(params_.narrow(0, e.offset, e.count).view(e.shape));
      if (e.frozen) {
        io.param_grads.emplace_back();
      } else {
        io.param_grads.push_back(grads_.narrow(0, e.offset, e.count).view(e.shape));
        begin = std::min(begin, e.offset);
        end = std::max(end, e.offset + e.count);
      }
    }
    if (end > begin) layer_grad_range_[li] = {begin, end};
  }
  master_params_.resize(layers_.size());
  master_grads_.resize(layers_.size());
  autocast_layer_.assign(layers_.size(), false);
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    LayerIO& io = io_[li];
    master_params_[li] = io.params;
    master_grads_[li] = io.param_grads;
    if (options_.compute_dtype == DType::f32 || !layers_[li]->params_in_compute_dtype()) continue;
    autocast_layer_[li] = true;
    // A convolution writing nhwc keeps its 4-d weight copies nhwc too, cuDNN's NHWC filter (as
    // PyTorch's channels_last weights): ops::cast reorders them from and to the plain masters.
    const bool nhwc_weights = layers_[li]->layout_use() == Layer::LayoutUse::blocks &&
                              !io.top.empty() && io.top[0].layout() == Layout::nhwc;
    for (std::size_t d = 0; d < io.params.size(); ++d) {
      const Shape& shape = io.params[d].shape();
      const Layout layout = nhwc_weights && shape.ndim() == 4 ? Layout::nhwc : Layout::plain;
      io.params[d] =
          Tensor::empty(shape, options_.compute_dtype, options_.device).with_layout(layout);
      if (io.param_grads[d].defined()) {
        io.param_grads[d] =
            Tensor::zeros(shape, options_.compute_dtype, options_.device).with_layout(layout);
      }
    }
  }
}

Tensor Net::state_tensor(const std::string& name) const {
  for (const auto& e : param_table_) {
    if (e.name == name) return params_.narrow(0, e.offset, e.count).view(e.shape);
  }
  for (const auto& e : buffer_table_) {
    if (e.name == name) return buffers_.narrow(0, e.offset, e.count).view(e.shape);
  }
  return {};
}

std::vector<std::pair<std::string, Tensor>> Net::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    for (std::size_t d = 0; d < decls_[li].size(); ++d) {
      out.emplace_back(layers_[li]->name() + "." + decls_[li][d].suffix, master_params_[li][d]);
    }
  }
  return out;
}

Tensor Net::blob(const std::string& name) const {
  Tensor found;
  for (const auto& b : blobs_) {
    if (b.name == name && b.shadow_of < 0) found = b.data;  // the newest version wins
  }
  if (found.defined() && !found.is_plain()) {  // users see plain tensors
    Tensor plain = Tensor::empty(found.shape(), found.dtype(), found.device());
    ops::reorder(found, plain);
    return plain;
  }
  return found;
}

void Net::forward(const StepContext& ctx) {
  using Clock = std::chrono::steady_clock;
  if (input_blob_.defined()) ops::cast(input_, input_blob_);
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    if (!layer_timer_) {
      forward_layer(li, ctx);
      continue;
    }
    const auto start = Clock::now();
    forward_layer(li, ctx);
    layer_timer_(li, false, start, Clock::now());
  }
  if (weighted_loss_) sum_losses();
}

void Net::sum_losses() {
  loss_.copy_from(losses_[0].value);
  ops::scale(losses_[0].weight, loss_);
  for (std::size_t i = 1; i < losses_.size(); ++i)
    ops::axpy(losses_[i].weight, losses_[i].value, loss_);
}

void Net::forward_layer(std::size_t li, const StepContext& ctx) {
  if (autocast_layer_[li]) {  // this step's weights, in the compute dtype
    for (std::size_t d = 0; d < io_[li].params.size(); ++d) {
      ops::cast(master_params_[li][d], io_[li].params[d]);
    }
  }
  layers_[li]->forward(io_[li], ctx);
  after_layer(li, false);
}

void Net::backward(const StepContext& ctx, bool accumulate) {
  using Clock = std::chrono::steady_clock;
  if (accumulate && !grad_scratch_.defined()) make_grad_scratch();
  for (std::size_t li = layers_.size(); li-- > 0;) {
    if (!trainable_layer_[li]) continue;
    if (!layer_timer_) {
      backward_layer(li, ctx, accumulate);
      continue;
    }
    const auto start = Clock::now();
    backward_layer(li, ctx, accumulate);
    layer_timer_(li, true, start, Clock::now());
  }
}

void Net::backward_layer(std::size_t li, const StepContext& step, bool accumulate) {
  // A loss layer seeds its gradient with loss_scale: times its loss_weight here.
  StepContext weighted;
  const StepContext& ctx = weighted_loss_ ? weighted_context(li, step, weighted) : step;
  // Readers other than the last one wrote their own gradient buffers: add them up.
  for (int t : tops_[li]) {
    Blob& blob = blobs_[static_cast<std::size_t>(t)];
    for (const Tensor& extra : blob.extra_diffs) ops::axpy(1.0f, extra, blob.diff);
  }
  const auto [begin, end] = layer_grad_range_[li];
  if (autocast_layer_[li]) {
    // The layer wrote low-precision gradients; the f32 ones go where an f32 layer writes them.
    layers_[li]->backward(io_[li], ctx);
    for (std::size_t d = 0; d < io_[li].param_grads.size(); ++d) {
      if (!io_[li].param_grads[d].defined()) continue;
      Tensor target = accumulate ? scratch_param_grads_[li][d] : master_grads_[li][d];
      ops::cast(io_[li].param_grads[d], target);
    }
    if (accumulate && end > begin) {
      Tensor range = grads_.narrow(0, begin, end - begin);
      ops::axpy(1.0f, grad_scratch_.narrow(0, begin, end - begin), range);
    }
  } else if (accumulate && end > begin) {
    std::swap(io_[li].param_grads, scratch_param_grads_[li]);
    layers_[li]->backward(io_[li], ctx);
    std::swap(io_[li].param_grads, scratch_param_grads_[li]);
    Tensor range = grads_.narrow(0, begin, end - begin);
    ops::axpy(1.0f, grad_scratch_.narrow(0, begin, end - begin), range);
  } else {
    layers_[li]->backward(io_[li], ctx);
  }
  after_layer(li, true);
  if (grad_ready_ && end > begin) grad_ready_(begin, end);
}

const StepContext& Net::weighted_context(std::size_t li, const StepContext& step,
                                         StepContext& weighted) const {
  for (const LossTerm& term : losses_) {
    if (term.layer != static_cast<int>(li)) continue;
    weighted = step;
    weighted.loss_scale = step.loss_scale * term.weight;
    return weighted;
  }
  return step;
}

void Net::backward_from_output(const Tensor& output_grad, const StepContext& ctx) {
  RUCHE_REQUIRE(main_loss_layer_ >= 0) << "backward_from_output: the net has no loss layer";
  const auto loss_layer = static_cast<std::size_t>(main_loss_layer_);
  Tensor dy = io_[loss_layer].bottom_diff.empty() ? Tensor() : io_[loss_layer].bottom_diff[0];
  RUCHE_REQUIRE(dy.defined()) << "backward_from_output: no gradient flows into the loss's input "
                              << "(nothing trainable below it)";
  RUCHE_REQUIRE(output_grad.shape() == dy.shape())
      << "backward_from_output: a gradient of shape " << output_grad.shape().str()
      << " for an output of shape " << dy.shape().str();
  dy.copy_from(output_grad);
  after_layer(loss_layer, true);  // a shadow's gradient into the blob's
  for (std::size_t li = loss_layer; li-- > 0;) {
    if (!trainable_layer_[li]) continue;
    if (is_loss(param_.layer(static_cast<int>(li)).type())) {
      // An auxiliary head: no gradient of it flows into the output's.
      for (Tensor& d : io_[li].bottom_diff) {
        if (d.defined()) d.zero();
      }
      after_layer(li, true);
      continue;
    }
    backward_layer(li, ctx, false);
  }
}

Tensor Net::input_grad() const {
  if (!options_.input_grad || blobs_.empty()) return Tensor();
  return blobs_[static_cast<std::size_t>(tops_[0][0])].diff;
}

std::vector<LayerTiming> Net::time_layers(int iterations, const StepContext& ctx) {
  using Clock = std::chrono::steady_clock;
  const auto ms_since = [](Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
  };
  std::vector<LayerTiming> timings(layers_.size());
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    timings[li].name = layers_[li]->name();
    timings[li].type = layers_[li]->type();
    timings[li].has_backward = trainable_layer_[li];
  }
  // A GPU runs asynchronously: each layer is timed from an idle device to an idle device.
  const auto settle = [this] {
    if (options_.device.is_cuda()) cuda::synchronize(options_.device.index);
  };
  forward(ctx);  // warm-up: first-touch pages, primitive caches, algorithm choices
  backward(ctx, false);
  settle();
  for (int it = 0; it < iterations; ++it) {
    for (std::size_t li = 0; li < layers_.size(); ++li) {
      const auto start = Clock::now();
      forward_layer(li, ctx);
      settle();
      timings[li].forward_ms += ms_since(start);
    }
    for (std::size_t li = layers_.size(); li-- > 0;) {
      if (!trainable_layer_[li]) continue;
      const auto start = Clock::now();
      backward_layer(li, ctx, false);
      settle();
      timings[li].backward_ms += ms_since(start);
    }
  }
  for (LayerTiming& t : timings) {
    t.forward_ms /= std::max(iterations, 1);
    t.backward_ms /= std::max(iterations, 1);
  }
  return timings;
}

void Net::make_grad_scratch() {
  grad_scratch_ =
      Tensor::zeros({std::max<std::int64_t>(num_trainable_, 1)}, DType::f32, options_.device)
          .narrow(0, 0, num_trainable_);
  scratch_param_grads_.resize(layers_.size());
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    for (const Tensor& g : master_grads_[li]) {
      if (!g.defined()) {
        scratch_param_grads_[li].emplace_back();
        continue;
      }
      const std::int64_t offset = g.offset() - grads_.offset();
      scratch_param_grads_[li].push_back(
          grad_scratch_.narrow(0, offset, g.numel()).view(g.shape()));
    }
  }
}

void Net::set_grad_ready_hook(std::function<void(std::int64_t, std::int64_t)> hook) {
  grad_ready_ = std::move(hook);
}

void Net::init_params(std::uint64_t seed) {
  std::uint32_t index = 0;
  // Forward order of declaration, so a parameter's stream does not depend on the flat layout.
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    for (std::size_t d = 0; d < decls_[li].size(); ++d) {
      Tensor t = master_params_[li][d];
      fill_param(t, decls_[li][d], RngStream{seed, RngPurpose::init, 0, 0, index++});
    }
  }
}

double Net::forward_flops() const {
  double total = 0;
  for (const auto& l : layers_) total += l->forward_flops();
  return total;
}

std::size_t Net::activation_bytes() const {
  std::size_t total = 0;
  for (const auto& b : blobs_) {
    if (b.in_place_of >= 0) continue;
    total += b.data.nbytes() + (b.diff.defined() ? b.diff.nbytes() : 0);
    for (const auto& e : b.extra_diffs) total += e.nbytes();
  }
  return total;
}

std::string Net::summary() const {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line, "%-28s %-16s %-22s %12s %12s\n", "layer", "type", "output",
                "params", "MFLOPs");
  out << line;
  std::int64_t total_params = 0;
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    std::int64_t count = 0;
    for (const auto& d : decls_[li]) {
      if (d.role != ParamRole::buffer) count += d.shape.numel();
    }
    total_params += count;
    const std::string shape =
        tops_[li].empty() ? "-" : blobs_[static_cast<std::size_t>(tops_[li][0])].data.shape().str();
    std::snprintf(line, sizeof line, "%-28s %-16s %-22s %12lld %12.1f\n",
                  layers_[li]->name().substr(0, 28).c_str(), layers_[li]->type().c_str(),
                  shape.c_str(), static_cast<long long>(count),
                  2.0 * layers_[li]->forward_flops() / 1e6);
    out << line;
  }
  const std::size_t activations = planned_ ? memory_plan_.peak : activation_bytes();
  std::snprintf(line, sizeof line,
                "total: %lld parameters (%lld trainable), %.1f MFLOPs forward per batch of %d, "
                "%.1f MiB of activations and gradients, %.1f MiB of parameters\n",
                static_cast<long long>(total_params), static_cast<long long>(num_trainable_),
                2.0 * forward_flops() / 1e6, options_.batch_size,
                static_cast<double>(activations) / (1 << 20),
                static_cast<double>(params_.nbytes() * 2 + buffers_.nbytes()) / (1 << 20));
  out << line;
  return out.str();
}

std::string Net::first_nonfinite() const {
  auto finite = [](const Tensor& t) {
    if (!t.defined() || t.dtype() == DType::i32 || t.dtype() == DType::i64 ||
        t.dtype() == DType::u8) {
      return true;
    }
    Tensor f32 = t.with_layout(Layout::plain);  // finiteness does not care about the order
    if (t.dtype() != DType::f32) {              // an autocast activation
      f32 = Tensor::empty(t.shape(), DType::f32, t.device());
      ops::cast(t.contiguous(), f32);
    }
    for (float v : f32.to_vector<float>()) {
      if (!std::isfinite(v)) return false;
    }
    return true;
  };
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    for (const auto& p : master_params_[li]) {
      if (!finite(p))
        return "layer '" + layers_[li]->name() + "' (" + layers_[li]->type() + ") parameters";
    }
    for (const auto& t : io_[li].top) {
      if (!finite(t))
        return "layer '" + layers_[li]->name() + "' (" + layers_[li]->type() + ") output";
    }
  }
  for (std::size_t li = layers_.size(); li-- > 0;) {
    for (const auto& g : master_grads_[li]) {
      if (!finite(g))
        return "layer '" + layers_[li]->name() + "' (" + layers_[li]->type() + ") gradient";
    }
  }
  return "";
}

}  // namespace ruche
