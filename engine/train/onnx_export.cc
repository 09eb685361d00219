#include "engine/train/onnx_export.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/file_io.h"
#include "engine/error.h"
#include "engine/graph/net.h"
#include "engine/layers/layer_util.h"
#include "engine/tensor/npz.h"
#include "engine/train/export.h"

namespace ruche {
namespace {

constexpr int kIrVersion = 8;  // the IR version that goes with opset 17 (ONNX 1.12)

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void set_float_type(onnx::ValueInfoProto& info, const std::string& name,
                    const std::vector<std::string>& dims) {
  info.set_name(name);
  auto* tensor = info.mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tensor->mutable_shape();
  for (const std::string& d : dims) {
    auto* dim = shape->add_dim();
    if (!d.empty() && (d[0] == '-' || (d[0] >= '0' && d[0] <= '9'))) {
      dim->set_dim_value(std::stoll(d));
    } else {
      dim->set_dim_param(d);
    }
  }
}

void add_attr(onnx::NodeProto& node, const std::string& name, std::int64_t value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void add_attr(onnx::NodeProto& node, const std::string& name, float value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

void add_attr(onnx::NodeProto& node, const std::string& name, std::vector<std::int64_t> values) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (const std::int64_t v : values) a->add_ints(v);
}

// Builds the graph layer by layer. Each ruche blob name maps to the ONNX value now holding it: an
// in-place layer (ReLU top == bottom) writes a new value, since ONNX values are assigned once.
class GraphBuilder {
 public:
  GraphBuilder(onnx::GraphProto& graph, const std::map<std::string, Tensor>& weights)
      : graph_(graph), weights_(weights) {}

  // "layer 'conv1' (Convolution)": how errors name the layer being exported.
  void begin_layer(const proto::LayerParameter& layer) {
    layer_ = &layer;
    where_ = "layer '" + layer.name() + "' (" + layer.type() + ")";
  }
  const std::string& where() const { return where_; }

  std::string input(int i) const {
    RUCHE_REQUIRE(i < layer_->bottom_size()) << where_ << ": expected a bottom " << i;
    const auto it = values_.find(layer_->bottom(i));
    RUCHE_REQUIRE(it != values_.end())
        << where_ << ": bottom '" << layer_->bottom(i) << "' is written by no earlier layer";
    return it->second;
  }

  // The value for top i of the current layer: the layer's name (plus ":i" past the first).
  std::string output(int i = 0) {
    RUCHE_REQUIRE(i < layer_->top_size()) << where_ << ": expected a top " << i;
    std::string value = layer_->name() + (i == 0 ? "" : ":" + std::to_string(i));
    RUCHE_REQUIRE(taken_.insert(value).second)
        << where_ << ": the ONNX value name '" << value << "' is already taken (layer names "
        << "must be unique)";
    values_[layer_->top(i)] = value;
    return value;
  }

  void alias(const std::string& blob, const std::string& value) { values_[blob] = value; }
  void reserve(const std::string& value) { taken_.insert(value); }

  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& suffix = "") {
    onnx::NodeProto& n = *graph_.add_node();
    n.set_op_type(op);
    n.set_name(layer_->name() + suffix);
    for (const auto& in : inputs) n.add_input(in);
    for (const auto& out : outputs) n.add_output(out);
    return n;
  }

  // The initializer for "<layer>.<suffix>", added on first use; a ruche::Error when absent.
  std::string weight(const std::string& suffix) {
    const std::string name = layer_->name() + "." + suffix;
    const auto it = weights_.find(name);
    RUCHE_REQUIRE(it != weights_.end()) << where_ << ": the weights hold no '" << name << "'";
    if (used_.insert(name).second) add_initializer(name, it->second);
    return name;
  }
  const Tensor& weight_tensor(const std::string& suffix) { return weights_.at(weight(suffix)); }
  bool has_weight(const std::string& suffix) const {
    return weights_.count(layer_->name() + "." + suffix) != 0;
  }
  void mark_used(const std::string& name) { used_.insert(name); }
  const std::set<std::string>& used() const { return used_; }

  // A constant initializer of floats (batch norm without affine: scale 1, shift 0).
  std::string constant(const std::string& name, const std::vector<float>& values) {
    Tensor t = Tensor::empty(Shape{static_cast<std::int64_t>(values.size())}, DType::f32);
    std::memcpy(t.data<float>(), values.data(), values.size() * sizeof(float));
    add_initializer(name, t);
    return name;
  }
  std::string constant_i64(const std::string& name, const std::vector<std::int64_t>& values) {
    onnx::TensorProto& t = *graph_.add_initializer();
    t.set_name(name);
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_dims(static_cast<std::int64_t>(values.size()));
    for (const std::int64_t v : values) t.add_int64_data(v);
    return name;
  }

 private:
  void add_initializer(const std::string& name, const Tensor& tensor) {
    RUCHE_REQUIRE(tensor.dtype() == DType::f32)
        << where_ << ": '" << name << "' is " << dtype_name(tensor.dtype()) << ", expected float32";
    const Tensor host = tensor.contiguous().to(Device::cpu());
    onnx::TensorProto& t = *graph_.add_initializer();
    t.set_name(name);
    t.set_data_type(onnx::TensorProto::FLOAT);
    for (const std::int64_t d : host.shape()) t.add_dims(d);
    // raw_data is little-endian, as our (x86, ARM) floats already are.
    t.set_raw_data(host.data<float>(), host.nbytes());
  }

  onnx::GraphProto& graph_;
  const std::map<std::string, Tensor>& weights_;
  const proto::LayerParameter* layer_ = nullptr;
  std::string where_;
  std::map<std::string, std::string> values_;  // ruche blob -> current ONNX value
  std::set<std::string> taken_;                // ONNX value names in use
  std::set<std::string> used_;                 // weights in the graph
};

void convolution(GraphBuilder& g, const proto::LayerParameter& layer) {
  const auto& c = layer.convolution_param();
  const layers::HW k = layers::hw_of(c.has_kernel_size(), c.kernel_size(), c.has_kernel_h(),
                                     c.kernel_h(), c.has_kernel_w(), c.kernel_w(), 0);
  const layers::HW s = layers::hw_of(true, c.stride(), c.has_stride_h(), c.stride_h(),
                                     c.has_stride_w(), c.stride_w(), 1);
  const layers::HW p =
      layers::hw_of(true, c.pad(), c.has_pad_h(), c.pad_h(), c.has_pad_w(), c.pad_w(), 0);
  std::vector<std::string> inputs{g.input(0), g.weight("weight")};
  if (c.bias_term()) inputs.push_back(g.weight("bias"));
  onnx::NodeProto& n = g.node("Conv", inputs, {g.output()});
  add_attr(n, "kernel_shape", std::vector<std::int64_t>{k.h, k.w});
  add_attr(n, "strides", std::vector<std::int64_t>{s.h, s.w});
  add_attr(n, "pads", std::vector<std::int64_t>{p.h, p.w, p.h, p.w});  // begins, then ends
  add_attr(n, "dilations", std::vector<std::int64_t>{c.dilation(), c.dilation()});
  add_attr(n, "group", static_cast<std::int64_t>(c.group()));
}

void batch_norm(GraphBuilder& g, const proto::LayerParameter& layer) {
  const auto& b = layer.batch_norm_param();
  const std::string mean = g.weight("running_mean");
  const std::string var = g.weight("running_var");
  if (g.has_weight("num_batches_tracked")) g.mark_used(layer.name() + ".num_batches_tracked");
  std::string scale, shift;
  if (b.affine()) {
    scale = g.weight("weight");
    shift = g.weight("bias");
  } else {  // ONNX always scales and shifts: by 1 and 0
    const auto channels = static_cast<std::size_t>(g.weight_tensor("running_mean").numel());
    scale = g.constant(layer.name() + ".ones", std::vector<float>(channels, 1.0f));
    shift = g.constant(layer.name() + ".zeros", std::vector<float>(channels, 0.0f));
  }
  onnx::NodeProto& n =
      g.node("BatchNormalization", {g.input(0), scale, shift, mean, var}, {g.output()});
  add_attr(n, "epsilon", b.eps());
}

void pooling(GraphBuilder& g, const proto::LayerParameter& layer) {
  const auto& q = layer.pooling_param();
  const bool max = q.pool() == proto::PoolingParameter::MAX;
  if (q.global_pooling()) {
    g.node(max ? "GlobalMaxPool" : "GlobalAveragePool", {g.input(0)}, {g.output()});
    return;
  }
  const layers::HW k = layers::hw_of(q.has_kernel_size(), q.kernel_size(), q.has_kernel_h(),
                                     q.kernel_h(), q.has_kernel_w(), q.kernel_w(), 0);
  const layers::HW s = layers::hw_of(q.has_stride(), q.stride(), q.has_stride_h(), q.stride_h(),
                                     q.has_stride_w(), q.stride_w(), 0);
  const layers::HW p =
      layers::hw_of(true, q.pad(), q.has_pad_h(), q.pad_h(), q.has_pad_w(), q.pad_w(), 0);
  onnx::NodeProto& n = g.node(max ? "MaxPool" : "AveragePool", {g.input(0)}, {g.output()});
  add_attr(n, "kernel_shape", std::vector<std::int64_t>{k.h, k.w});
  // PyTorch's default, as the Pooling layer's: the stride is the kernel size.
  add_attr(n, "strides", std::vector<std::int64_t>{s.h > 0 ? s.h : k.h, s.w > 0 ? s.w : k.w});
  add_attr(n, "pads", std::vector<std::int64_t>{p.h, p.w, p.h, p.w});
  add_attr(n, "ceil_mode", static_cast<std::int64_t>(q.ceil_mode()));
  if (!max) add_attr(n, "count_include_pad", static_cast<std::int64_t>(q.count_include_pad()));
}

// y = x W^T + b on the input flattened from axis 1 (torch.nn.Linear after torch.flatten).
void inner_product(GraphBuilder& g, const proto::LayerParameter& layer) {
  const std::string flat = layer.name() + ".flat";
  g.reserve(flat);
  onnx::NodeProto& f = g.node("Flatten", {g.input(0)}, {flat}, "/flatten");
  add_attr(f, "axis", std::int64_t{1});
  std::vector<std::string> inputs{flat, g.weight("weight")};
  if (layer.inner_product_param().bias_term()) inputs.push_back(g.weight("bias"));
  onnx::NodeProto& n = g.node("Gemm", inputs, {g.output()});
  add_attr(n, "transB", std::int64_t{1});
}

// torch.flatten(x, axis): ONNX's Flatten makes 2-D, so an axis past 1 is a Reshape keeping the
// leading dimensions (0 copies the input's dimension) and joining the rest (-1).
void flatten(GraphBuilder& g, const proto::LayerParameter& layer) {
  const int axis = layer.flatten_param().axis();
  RUCHE_REQUIRE(axis >= 1) << g.where() << ": cannot be exported to ONNX: axis " << axis
                           << " (only axes counted from the front, 1 or more)";
  if (axis == 1) {
    onnx::NodeProto& n = g.node("Flatten", {g.input(0)}, {g.output()});
    add_attr(n, "axis", std::int64_t{1});
    return;
  }
  std::vector<std::int64_t> shape(static_cast<std::size_t>(axis), 0);
  shape.push_back(-1);
  const std::string target = g.constant_i64(layer.name() + ".shape", shape);
  g.node("Reshape", {g.input(0), target}, {g.output()});
}

void eltwise(GraphBuilder& g, const proto::LayerParameter& layer) {
  RUCHE_REQUIRE(layer.eltwise_param().operation() == proto::EltwiseParameter::SUM)
      << g.where() << ": cannot be exported to ONNX: only SUM is supported";
  RUCHE_REQUIRE(layer.bottom_size() >= 2) << g.where() << ": expected two or more bottoms";
  std::vector<std::string> inputs;
  for (int i = 0; i < layer.bottom_size(); ++i) inputs.push_back(g.input(i));
  g.node(inputs.size() == 2 ? "Add" : "Sum", inputs, {g.output()});
}

// The head's shape as ONNX dims, batch "N": the loss's input in the net built for one sample
// (a classifier left at num_output 0 takes its width from its weight, [K, in]).
std::vector<std::string> head_dims(const proto::NetParameter& param,
                                   const std::map<std::string, Tensor>& weights,
                                   const Shape& sample) {
  NetOptions options;
  options.sample_shape = sample;
  for (const auto& layer : param.layer()) {
    const auto it = weights.find(layer.name() + ".weight");
    if (layer.type() == "InnerProduct" && layer.inner_product_param().num_output() == 0 &&
        it != weights.end() && it->second.ndim() == 2) {
      options.num_classes = static_cast<int>(it->second.size(0));
    }
  }
  const std::unique_ptr<Net> net = Net::build(param, options);
  std::vector<std::string> dims{"N"};
  const Shape& head = net->output().shape();
  for (int i = 1; i < head.ndim(); ++i) dims.push_back(std::to_string(head[i]));
  return dims;
}

}  // namespace

std::string onnx_model(const proto::NetParameter& net, const std::map<std::string, Tensor>& weights,
                       const Shape& sample_shape, OnnxSummary* summary) {
  onnx::ModelProto model;
  model.set_ir_version(kIrVersion);
  model.set_producer_name("ruche");
  model.set_producer_version("0.1.0");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  onnx::GraphProto& graph = *model.mutable_graph();
  graph.set_name(net.name().empty() ? "ruche" : net.name());

  GraphBuilder g(graph, weights);
  for (const char* name : {"input", "logits", "probs", "output"}) g.reserve(name);
  std::string head;  // the loss layer's output name: "logits" (classifier) or "output" (regression)
  Shape sample;
  for (const proto::LayerParameter& layer : net.layer()) {
    g.begin_layer(layer);
    const std::string& type = layer.type();
    if (type == "Input") {
      RUCHE_REQUIRE(sample.ndim() == 0) << g.where() << ": a second Input layer";
      const auto& dims = layer.input_param().dim();
      sample = dims.empty() ? sample_shape : Shape(dims.begin(), dims.end());
      RUCHE_REQUIRE(sample.ndim() > 0)
          << g.where() << ": gives no input dims; pass the sample shape (--input C,H,W)";
      g.alias(layer.top(0), "input");  // the labels (top 1) feed only the loss, not exported
      std::vector<std::string> dims_text{"N"};
      for (const std::int64_t d : sample) dims_text.push_back(std::to_string(d));
      set_float_type(*graph.add_input(), "input", dims_text);
    } else if (type == "SoftmaxWithLoss" || type == "EuclideanLoss") {
      RUCHE_REQUIRE(head.empty()) << g.where() << ": a second loss layer (one output head only)";
      head = type == "EuclideanLoss" ? "output" : "logits";
      const std::string scores = g.input(0);
      g.node("Identity", {scores}, {head}, "/" + head);
      if (type == "SoftmaxWithLoss") {
        onnx::NodeProto& n = g.node("Softmax", {scores}, {"probs"});
        add_attr(n, "axis", std::int64_t{1});
      }
    } else if (type == "Dropout") {  // the identity at inference
      g.alias(layer.top(0), g.input(0));
    } else if (type == "Convolution") {
      convolution(g, layer);
    } else if (type == "BatchNorm") {
      batch_norm(g, layer);
    } else if (type == "ReLU") {
      const float slope = layer.relu_param().negative_slope();
      const std::string x = g.input(0);
      onnx::NodeProto& n = g.node(slope > 0 ? "LeakyRelu" : "Relu", {x}, {g.output()});
      if (slope > 0) add_attr(n, "alpha", slope);
    } else if (type == "Sigmoid" || type == "TanH") {
      g.node(type == "Sigmoid" ? "Sigmoid" : "Tanh", {g.input(0)}, {g.output()});
    } else if (type == "Pooling") {
      pooling(g, layer);
    } else if (type == "InnerProduct") {
      inner_product(g, layer);
    } else if (type == "Eltwise") {
      eltwise(g, layer);
    } else if (type == "Flatten") {
      flatten(g, layer);
    } else if (type == "Softmax") {
      onnx::NodeProto& n = g.node("Softmax", {g.input(0)}, {g.output()});
      add_attr(n, "axis", std::int64_t{1});
    } else {
      RUCHE_FAIL() << g.where() << ": cannot be exported to ONNX (no mapping for " << type << ")";
    }
  }
  RUCHE_REQUIRE(sample.ndim() > 0) << "the net has no Input layer: nothing to name the ONNX input";
  RUCHE_REQUIRE(!head.empty()) << "the net has no loss layer (SoftmaxWithLoss or EuclideanLoss)";

  // The outputs' shapes (ONNX wants them declared): the net built for one sample says them.
  const std::vector<std::string> out_dims = head_dims(net, weights, sample);
  set_float_type(*graph.add_output(), head, out_dims);
  if (head == "logits") set_float_type(*graph.add_output(), "probs", out_dims);

  for (const auto& [name, tensor] : weights) {
    RUCHE_REQUIRE(g.used().count(name) || ends_with(name, ".num_batches_tracked"))
        << "'" << name << "' belongs to no exported layer of the net";
  }
  if (summary) {
    summary->nodes = graph.node_size();
    summary->initializers = graph.initializer_size();
    summary->input = sample;
  }
  std::string bytes;
  RUCHE_CHECK(model.SerializeToString(&bytes)) << "serializing the ONNX model";
  return bytes;
}

OnnxSummary export_onnx(const std::string& from, const std::string& to, const Shape& sample_shape) {
  const proto::NetParameter net = parse_net(export_net(from), from + " (net)", nullptr);
  std::map<std::string, Tensor> weights;
  if (const std::string checkpoint = checkpoint_of(from); !checkpoint.empty()) {
    for (auto& [name, tensor] : checkpoint_weights(load_checkpoint(checkpoint))) {
      weights.emplace(name, tensor);
    }
  } else {
    weights = load_npz(weights_of(from));
  }
  OnnxSummary summary;
  const std::string bytes = onnx_model(net, weights, sample_shape, &summary);
  checkpoint_io::write_file_durably(to, bytes);
  return summary;
}

}  // namespace ruche
