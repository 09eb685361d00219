#include "engine/train/onnx_export.h"
#include "engine/train/task.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>
#include <vector>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/file_io.h"
#include "engine/checkpoint/manifest.h"
#include "engine/data/preprocess.h"
#include "engine/error.h"
#include "engine/graph/net.h"
#include "engine/layers/layer_util.h"
#include "engine/metrics/json_writer.h"
#include "engine/tensor/npy.h"
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
                    const std::vector<std::string>& dims,
                    int elem_type = onnx::TensorProto::FLOAT) {
  info.set_name(name);
  auto* tensor = info.mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(elem_type);
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

void add_attr(onnx::NodeProto& node, const std::string& name,
              const std::vector<std::int64_t>& values) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (const std::int64_t v : values) a->add_ints(v);
}

void add_attr(onnx::NodeProto& node, const std::string& name, const std::string& value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(value);
}

// Builds the graph layer by layer. Each ruche blob name maps to the ONNX value now holding it: an
// in-place layer (ReLU top == bottom) writes a new value, since ONNX values are assigned once.
class GraphBuilder {
 public:
  GraphBuilder(onnx::GraphProto& graph, const std::map<std::string, Tensor>& weights)
      : graph_(graph),
        weights_(weights) {}

  // "layer 'conv1' (Convolution)": how errors name the layer being exported.
  void begin_layer(const proto::LayerParameter& layer) {
    layer_ = &layer;
    where_ = "layer '" + layer.name() + "' (" + layer.type() + ")";
  }
  const std::string& where() const { return where_; }

  // The value of a blob by name (its newest version).
  std::string input_of_blob(const std::string& blob) const {
    const auto it = values_.find(blob);
    RUCHE_REQUIRE(it != values_.end()) << where_ << ": '" << blob << "' is written by no layer";
    return it->second;
  }

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

  // A node outside any layer (the preprocessing in front of the net, the decision behind it).
  onnx::NodeProto& free_node(const std::string& op, const std::vector<std::string>& inputs,
                             const std::string& output) {
    onnx::NodeProto& n = *graph_.add_node();
    n.set_op_type(op);
    n.set_name(output);
    for (const auto& in : inputs) n.add_input(in);
    n.add_output(output);
    return n;
  }

  // The initializer for "<layer>.<suffix>", added on first use; a ruche::Error when absent.
  std::string weight(const std::string& suffix) {
    std::string name = layer_->name() + "." + suffix;
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
  // The weight "<layer>.<suffix>" of another layer, marked used but not added: its values enter a
  // folded constant. nullptr when absent and `optional`.
  const Tensor* folded_weight(const std::string& layer, const std::string& suffix,
                              bool optional = false) {
    const std::string name = layer + "." + suffix;
    const auto it = weights_.find(name);
    RUCHE_REQUIRE(optional || it != weights_.end())
        << where_ << ": the weights hold no '" << name << "'";
    if (it == weights_.end()) return nullptr;
    used_.insert(name);
    return &it->second;
  }
  const std::set<std::string>& used() const { return used_; }

  // A constant initializer of floats (batch norm without affine: scale 1, shift 0).
  std::string constant(const std::string& name, const std::vector<float>& values) {
    Tensor t = Tensor::empty(Shape{static_cast<std::int64_t>(values.size())}, DType::f32);
    std::memcpy(t.data<float>(), values.data(), values.size() * sizeof(float));
    add_initializer(name, t);
    return name;
  }
  // A float initializer of the given shape (its numel values).
  std::string constant(const std::string& name, const Shape& shape,
                       const std::vector<float>& values) {
    RUCHE_CHECK(shape.numel() == static_cast<std::int64_t>(values.size())) << name;
    Tensor t = Tensor::empty(shape, DType::f32);
    std::memcpy(t.data<float>(), values.data(), values.size() * sizeof(float));
    add_initializer(name, t);
    return name;
  }
  // A 0-d float initializer.
  std::string scalar(const std::string& name, float value) {
    return constant(name, Shape{}, std::vector<float>{value});
  }
  // A 0-d int64 initializer (a Gather index that drops its axis).
  std::string scalar_i64(const std::string& name, std::int64_t value) {
    onnx::TensorProto& t = *graph_.add_initializer();
    t.set_name(name);
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_int64_data(value);
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

// The weights of Conv + BatchNorm at inference as one Conv: per output channel o, with
// s = gamma[o] / sqrt(running_var[o] + eps), W'[o] = W[o] * s and b'[o] = (b[o] - mean[o]) * s +
// beta[o] (gamma 1 and beta 0 without affine). Computed in double, rounded once.
std::vector<std::string> folded_conv_weights(GraphBuilder& g, const proto::LayerParameter& conv,
                                             const proto::LayerParameter& bn) {
  const auto values = [](const Tensor* t) {
    return t ? t->contiguous().to(Device::cpu()).to_vector<float>() : std::vector<float>();
  };
  const Tensor& w = *g.folded_weight(conv.name(), "weight");
  const std::vector<float> weight = values(&w);
  const std::vector<float> bias = values(g.folded_weight(conv.name(), "bias", true));
  const std::vector<float> mean = values(g.folded_weight(bn.name(), "running_mean"));
  const std::vector<float> var = values(g.folded_weight(bn.name(), "running_var"));
  const std::vector<float> gamma = values(g.folded_weight(bn.name(), "weight", true));
  const std::vector<float> beta = values(g.folded_weight(bn.name(), "bias", true));
  g.folded_weight(bn.name(), "num_batches_tracked", true);
  const std::size_t out = mean.size(), per_channel = weight.size() / out;
  RUCHE_REQUIRE(static_cast<std::int64_t>(out) == w.size(0))
      << g.where() << ": " << w.size(0) << " output channels but batch norm '" << bn.name()
      << "' normalises " << out;
  std::vector<float> folded_w(weight.size()), folded_b(out);
  for (std::size_t o = 0; o < out; ++o) {
    const double s = (gamma.empty() ? 1.0 : gamma[o]) /
                     std::sqrt(static_cast<double>(var[o]) + bn.batch_norm_param().eps());
    for (std::size_t i = o * per_channel; i < (o + 1) * per_channel; ++i) {
      folded_w[i] = static_cast<float>(weight[i] * s);
    }
    folded_b[o] = static_cast<float>(((bias.empty() ? 0.0 : bias[o]) - mean[o]) * s +
                                     (beta.empty() ? 0.0 : beta[o]));
  }
  return {g.constant(conv.name() + ".weight_folded_" + bn.name(), w.shape(), folded_w),
          g.constant(conv.name() + ".bias_folded_" + bn.name(), folded_b)};
}

// bn: the BatchNorm folded into this convolution, or null.
void convolution(GraphBuilder& g, const proto::LayerParameter& layer,
                 const proto::LayerParameter* bn) {
  const auto& c = layer.convolution_param();
  const layers::HW k = layers::hw_of(c.has_kernel_size(), c.kernel_size(), c.has_kernel_h(),
                                     c.kernel_h(), c.has_kernel_w(), c.kernel_w(), 0);
  const layers::HW s = layers::hw_of(true, c.stride(), c.has_stride_h(), c.stride_h(),
                                     c.has_stride_w(), c.stride_w(), 1);
  const layers::HW p =
      layers::hw_of(true, c.pad(), c.has_pad_h(), c.pad_h(), c.has_pad_w(), c.pad_w(), 0);
  std::vector<std::string> inputs{g.input(0)};
  if (bn) {
    for (const std::string& folded : folded_conv_weights(g, layer, *bn)) inputs.push_back(folded);
  } else {
    inputs.push_back(g.weight("weight"));
    if (c.bias_term()) inputs.push_back(g.weight("bias"));
  }
  onnx::NodeProto& n = g.node("Conv", inputs, {g.output()});
  add_attr(n, "kernel_shape", std::vector<std::int64_t>{k.h, k.w});
  add_attr(n, "strides", std::vector<std::int64_t>{s.h, s.w});
  add_attr(n, "pads", std::vector<std::int64_t>{p.h, p.w, p.h, p.w});  // begins, then ends
  add_attr(n, "dilations", std::vector<std::int64_t>{c.dilation(), c.dilation()});
  add_attr(n, "group", static_cast<std::int64_t>(c.group()));
}

// Deconvolution: ConvTranspose with torch's weight layout (ONNX's [C, O/group, kh, kw] too).
void deconvolution(GraphBuilder& g, const proto::LayerParameter& layer) {
  const auto& c = layer.convolution_param();
  const layers::HW k = layers::hw_of(c.has_kernel_size(), c.kernel_size(), c.has_kernel_h(),
                                     c.kernel_h(), c.has_kernel_w(), c.kernel_w(), 0);
  const layers::HW s = layers::hw_of(true, c.stride(), c.has_stride_h(), c.stride_h(),
                                     c.has_stride_w(), c.stride_w(), 1);
  const layers::HW p =
      layers::hw_of(true, c.pad(), c.has_pad_h(), c.pad_h(), c.has_pad_w(), c.pad_w(), 0);
  const layers::HW op =
      layers::hw_of(true, c.output_padding(), c.has_output_padding_h(), c.output_padding_h(),
                    c.has_output_padding_w(), c.output_padding_w(), 0);
  std::vector<std::string> inputs{g.input(0), g.weight("weight")};
  if (c.bias_term()) inputs.push_back(g.weight("bias"));
  onnx::NodeProto& n = g.node("ConvTranspose", inputs, {g.output()});
  add_attr(n, "kernel_shape", std::vector<std::int64_t>{k.h, k.w});
  add_attr(n, "strides", std::vector<std::int64_t>{s.h, s.w});
  add_attr(n, "pads", std::vector<std::int64_t>{p.h, p.w, p.h, p.w});
  add_attr(n, "output_padding", std::vector<std::int64_t>{op.h, op.w});
  add_attr(n, "dilations", std::vector<std::int64_t>{c.dilation(), c.dilation()});
  add_attr(n, "group", static_cast<std::int64_t>(c.group()));
}

// Upsample: Resize by scales [1, 1, sh, sw] (the output floor(in * scale), coordinates through
// 1 / scale, as nn.Upsample) or by sizes [N, C] ++ [H, W] (coordinates through in / out). Nearest
// is asymmetric with floor; bilinear is linear, align_corners or half_pixel (torch clamps the
// negative source coordinates that ONNX's edge values give the same result for).
void upsample(GraphBuilder& g, const proto::LayerParameter& layer) {
  const auto& u = layer.upsample_param();
  const std::string x = g.input(0);
  std::vector<std::string> inputs{x, ""};
  if (u.has_height()) {
    const std::string nc = layer.name() + "/batch_channels", sizes = layer.name() + "/sizes";
    g.reserve(nc);
    g.reserve(sizes);
    onnx::NodeProto& shape = g.node("Shape", {x}, {nc}, "/shape");
    add_attr(shape, "start", std::int64_t{0});
    add_attr(shape, "end", std::int64_t{2});
    const std::string hw = g.constant_i64(layer.name() + ".size", {u.height(), u.width()});
    add_attr(g.node("Concat", {nc, hw}, {sizes}, "/sizes"), "axis", std::int64_t{0});
    inputs.insert(inputs.end(), {"", sizes});
  } else {
    const float sh = u.has_scale_factor() ? u.scale_factor() : u.scale_h();
    const float sw = u.has_scale_factor() ? u.scale_factor() : u.scale_w();
    inputs.push_back(g.constant(layer.name() + ".scales", {1.0f, 1.0f, sh, sw}));
  }
  onnx::NodeProto& n = g.node("Resize", inputs, {g.output()});
  if (u.mode() == proto::UpsampleParameter::BILINEAR) {
    add_attr(n, "mode", std::string("linear"));
    add_attr(n, "coordinate_transformation_mode",
             std::string(u.align_corners() ? "align_corners" : "half_pixel"));
  } else {
    add_attr(n, "mode", std::string("nearest"));
    add_attr(n, "coordinate_transformation_mode", std::string("asymmetric"));
    add_attr(n, "nearest_mode", std::string("floor"));
  }
}

void batch_norm(GraphBuilder& g, const proto::LayerParameter& layer) {
  const auto& b = layer.batch_norm_param();
  const std::string x = g.input(0);  // before output(), which renames an in-place top
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
  onnx::NodeProto& n = g.node("BatchNormalization", {x, scale, shift, mean, var}, {g.output()});
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

// SUM is Add or Sum (each bottom first multiplied by its coeff where one is not 1), PROD is Mul
// folded over the bottoms, MAX is Max.
void eltwise(GraphBuilder& g, const proto::LayerParameter& layer) {
  const auto& p = layer.eltwise_param();
  RUCHE_REQUIRE(layer.bottom_size() >= 2) << g.where() << ": expected two or more bottoms";
  std::vector<std::string> inputs;
  for (int i = 0; i < layer.bottom_size(); ++i) {
    inputs.push_back(g.input(i));
    if (i < p.coeff_size() && p.coeff(i) != 1.0f) {
      const std::string scaled = layer.name() + ".coeff" + std::to_string(i);
      g.node("Mul", {inputs.back(), g.scalar(scaled + ".value", p.coeff(i))}, {scaled},
             ".coeff" + std::to_string(i));
      inputs.back() = scaled;
    }
  }
  if (p.operation() == proto::EltwiseParameter::MAX) {
    g.node("Max", inputs, {g.output()});
  } else if (p.operation() == proto::EltwiseParameter::PROD) {
    std::string product = inputs[0];
    for (std::size_t i = 1; i + 1 < inputs.size(); ++i) {
      const std::string partial = layer.name() + ".prod" + std::to_string(i);
      g.node("Mul", {product, inputs[i]}, {partial}, ".prod" + std::to_string(i));
      product = partial;
    }
    g.node("Mul", {product, inputs.back()}, {g.output()});
  } else {
    g.node(inputs.size() == 2 ? "Add" : "Sum", inputs, {g.output()});
  }
}

// LRN across channels is ONNX's LRN (odd sizes: ONNX centres an even window otherwise than
// PyTorch); within a channel: x * (k + alpha * AveragePool(x^2, size, zero padding counted))^-beta.
void lrn(GraphBuilder& g, const proto::LayerParameter& layer) {
  const auto& p = layer.lrn_param();
  const auto size = static_cast<std::int64_t>(p.local_size());
  const std::string x = g.input(0);
  if (p.norm_region() == proto::LRNParameter::ACROSS_CHANNELS) {
    RUCHE_REQUIRE(size % 2 == 1) << g.where() << ": local_size " << size
                                 << " is even; ONNX's LRN centres an even window otherwise";
    onnx::NodeProto& n = g.node("LRN", {x}, {g.output()});
    add_attr(n, "size", size);
    add_attr(n, "alpha", p.alpha());
    add_attr(n, "beta", p.beta());
    add_attr(n, "bias", p.k());
    return;
  }
  const std::string& name = layer.name();
  const std::int64_t before = (size - 1) / 2, after = size - 1 - before;
  g.node("Mul", {x, x}, {name + "/sq"}, "/sq");
  onnx::NodeProto& pool = g.node("AveragePool", {name + "/sq"}, {name + "/mean"}, "/mean");
  add_attr(pool, "kernel_shape", std::vector<std::int64_t>{size, size});
  add_attr(pool, "pads", std::vector<std::int64_t>{before, before, after, after});
  add_attr(pool, "count_include_pad", std::int64_t{1});
  g.node("Mul", {name + "/mean", g.scalar(name + ".alpha", p.alpha())}, {name + "/am"}, "/am");
  g.node("Add", {name + "/am", g.scalar(name + ".k", p.k())}, {name + "/s"}, "/s");
  g.node("Pow", {name + "/s", g.scalar(name + ".neg_beta", -p.beta())}, {name + "/f"}, "/f");
  g.node("Mul", {x, name + "/f"}, {g.output()});
}

void concat(GraphBuilder& g, const proto::LayerParameter& layer) {
  std::vector<std::string> inputs;
  inputs.reserve(layer.bottom_size());
  for (int i = 0; i < layer.bottom_size(); ++i) inputs.push_back(g.input(i));
  onnx::NodeProto& n = g.node("Concat", inputs, {g.output()});
  add_attr(n, "axis", static_cast<std::int64_t>(layer.concat_param().axis()));
}

// y = x * scale + bias with the scale reshaped to broadcast: its dims, then a 1 for each dim of x
// after them (a second bottom keeps its own dims, which Reshape's 0 copies: its batch is N).
void scale(GraphBuilder& g, const proto::LayerParameter& layer, int x_ndim, int s_ndim) {
  const auto& p = layer.scale_param();
  const std::string& name = layer.name();
  const int axis = p.axis() < 0 ? p.axis() + x_ndim : p.axis();
  const bool from_bottom = layer.bottom_size() == 2;
  const std::string x = g.input(0);
  auto broadcast = [&](const std::string& value, const Shape& shape, const std::string& tag) {
    std::vector<std::int64_t> dims;
    dims.reserve(std::max(s_ndim, x_ndim - axis));
    for (int d = 0; d < s_ndim; ++d) dims.push_back(from_bottom ? 0 : shape[d]);
    while (axis + static_cast<int>(dims.size()) < x_ndim) dims.push_back(1);
    std::string out = name + "/" + tag;
    g.node("Reshape", {value, g.constant_i64(name + "." + tag + "_shape", dims)}, {out}, "/" + tag);
    return out;
  };
  const std::string s = from_bottom ? g.input(1) : g.weight("weight");
  const Shape s_shape = from_bottom ? Shape{} : g.weight_tensor("weight").shape();
  const std::string sb = broadcast(s, s_shape, "scale");
  if (!p.bias_term()) {
    g.node("Mul", {x, sb}, {g.output()});
    return;
  }
  g.node("Mul", {x, sb}, {name + "/mul"}, "/mul");
  const Shape b_shape = g.weight_tensor("bias").shape();
  const std::string bias = g.weight("bias");
  if (from_bottom) {  // the bias is a parameter of the second bottom's shape, batch included
    const std::string out = name + "/bias";
    std::vector<std::int64_t> dims(b_shape.begin(), b_shape.end());
    while (axis + static_cast<int>(dims.size()) < x_ndim) dims.push_back(1);
    g.node("Reshape", {bias, g.constant_i64(name + ".bias_shape", dims)}, {out}, "/bias");
    g.node("Add", {name + "/mul", out}, {g.output()});
    return;
  }
  g.node("Add", {name + "/mul", broadcast(bias, b_shape, "bias")}, {g.output()});
}

// (shift + scale * x)^power, as Mul, Add and Pow on scalars.
void power(GraphBuilder& g, const proto::LayerParameter& layer) {
  const auto& p = layer.power_param();
  const std::string& name = layer.name();
  g.node("Mul", {g.input(0), g.scalar(name + ".scale", p.scale())}, {name + "/ax"}, "/ax");
  g.node("Add", {name + "/ax", g.scalar(name + ".shift", p.shift())}, {name + "/b"}, "/b");
  g.node("Pow", {name + "/b", g.scalar(name + ".power", p.power())}, {g.output()});
}

// The net built for one sample (a classifier left at num_output 0 takes its width from its
// weight, [K, in]): the shapes of its blobs.
std::unique_ptr<Net> one_sample_net(const proto::NetParameter& param,
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
  // A regression net or an autoencoder: its label is a float target of the prediction's shape.
  if (is_float_target_loss(loss_type(param))) {
    options.target_shape = float_target_shape(param, options);
  }
  return Net::build(param, options);
}

// The head's shape as ONNX dims, batch "N": the main loss's input (a deploy net: its last
// layer's output) in the net built for one sample.
std::vector<std::string> head_dims(const proto::NetParameter& param,
                                   const std::map<std::string, Tensor>& weights,
                                   const Shape& sample) {
  const std::unique_ptr<Net> net = one_sample_net(param, weights, sample);
  std::vector<std::string> dims{"N"};
  const Shape& head = net->output().shape();
  for (int i = 1; i < head.ndim(); ++i) dims.push_back(std::to_string(head[i]));
  return dims;
}

// ---- the record in front of the net ----

int channels_of(const Shape& sample) {
  return sample.ndim() == 3 ? static_cast<int>(sample[0]) : 1;
}

// The shape per-channel statistics broadcast with: [1, C, 1, 1] for images [C, H, W], else one
// channel: [1, 1, ...] (a vector sample [D]: [1, 1]).
Shape stats_shape(const Shape& sample) {
  Shape s{1};
  for (int i = 0; i < sample.ndim(); ++i) {
    s.push_back(sample.ndim() == 3 && i == 0 ? sample[0] : 1);
  }
  return s;
}

// What the graph input takes, in words (the input's doc_string, and what `ruche export` prints).
std::string input_text(const proto::Preprocess* record, const Shape& sample) {
  if (record == nullptr) {
    return "values normalised as ruche's loader normalises them (the run predates preprocessing "
           "records)";
  }
  if (record->input() == "values") return "float32 values as the npz stores them";
  std::string s = "float32 pixel values 0-255";
  if (sample.ndim() == 3 && channels_of(sample) == 3) s += " (RGB)";
  if (sample.ndim() == 3 && channels_of(sample) == 1) s += " (gray)";
  return s;
}

// The record's steps as nodes from "input" (the loaders' order, engine/data/transform.h
// Normalization): times scale, RGB -> BGR, minus the mean image, per channel minus mean over std.
// Returns the value the net reads. Anything in the record that does not fit the net is a one-line
// ruche::Error naming the record.
std::string add_preprocess(GraphBuilder& g, const OnnxPreprocess& p, const Shape& sample) {
  const proto::Preprocess& r = p.record;
  const Shape recorded(r.sample_shape().begin(), r.sample_shape().end());
  RUCHE_REQUIRE(recorded == sample) << p.where << ": the record is for samples of shape "
                                    << recorded.str() << " but the net reads " << sample.str();
  const std::string input = r.has_input() ? r.input() : "pixels";
  RUCHE_REQUIRE(input == "pixels" || input == "values")
      << p.where << ": input '" << input << "', expected pixels or values";
  RUCHE_REQUIRE(r.scale() > 0 && std::isfinite(r.scale()))
      << p.where << ": scale " << r.scale() << ", expected > 0";
  const int channels = channels_of(sample);
  RUCHE_REQUIRE(r.mean_size() == 0 || r.mean_size() == channels)
      << p.where << ": " << r.mean_size() << " means for " << channels << " channels";
  RUCHE_REQUIRE(r.std_size() == 0 || r.std_size() == channels)
      << p.where << ": " << r.std_size() << " standard deviations for " << channels << " channels";
  for (const float s : r.std()) {
    RUCHE_REQUIRE(s > 0 && std::isfinite(s)) << p.where << ": std " << s << ", expected > 0";
  }
  const std::string& order = r.channel_order();
  RUCHE_REQUIRE(order.empty() || order == "gray" || order == "RGB" || order == "BGR")
      << p.where << ": channel_order '" << order << "', expected gray, RGB or BGR";
  RUCHE_REQUIRE(order != "BGR" || (sample.ndim() == 3 && channels == 3))
      << p.where << ": channel_order BGR for samples of shape " << sample.str();

  std::string x = "input";
  if (r.scale() != 1.0f) {
    // 1/255 (pixels) is a division by 255, as read() computes it (engine/data/in_memory.cc), so
    // the graph's first step is bit-identical to ruche's; any other scale is a product.
    const double inverse = 1.0 / static_cast<double>(r.scale());
    const double whole = std::round(inverse);
    const bool divide = whole >= 2 && std::fabs(inverse - whole) < 1e-3;
    const std::string k =
        g.scalar("preprocess.scale", divide ? static_cast<float>(whole) : r.scale());
    x = g.free_node(divide ? "Div" : "Mul", {x, k}, "preprocess/scale").output(0);
  }
  if (order == "BGR") {  // channel c of the net's input is channel 2 - c of the RGB image
    const std::string idx = g.constant_i64("preprocess.channel_order", {2, 1, 0});
    onnx::NodeProto& n = g.free_node("Gather", {x, idx}, "preprocess/bgr");
    add_attr(n, "axis", std::int64_t{1});
    x = n.output(0);
  }
  if (r.has_mean_image()) {
    const std::string path = (std::filesystem::path(p.dir) / r.mean_image()).string();
    RUCHE_REQUIRE(std::filesystem::is_regular_file(path))
        << p.where << ": its mean image " << path << " does not exist";
    const Tensor mean = load_npy(path);
    RUCHE_REQUIRE(mean.shape() == sample)
        << path << ": a mean image of shape " << mean.shape().str() << " for samples of shape "
        << sample.str();
    RUCHE_REQUIRE(mean.dtype() == DType::f32) << path << ": expected float32 values";
    Shape batched{1};
    for (const std::int64_t d : sample) batched.push_back(d);
    const std::string m = g.constant("preprocess.mean_image", batched, mean.to_vector());
    x = g.free_node("Sub", {x, m}, "preprocess/mean_image").output(0);
  }
  if (r.mean_size() > 0) {
    const std::string m = g.constant("preprocess.mean", stats_shape(sample),
                                     std::vector<float>(r.mean().begin(), r.mean().end()));
    x = g.free_node("Sub", {x, m}, "preprocess/mean").output(0);
  }
  if (r.std_size() > 0) {
    const std::string s = g.constant("preprocess.std", stats_shape(sample),
                                     std::vector<float>(r.std().begin(), r.std().end()));
    x = g.free_node("Div", {x, s}, "preprocess/std").output(0);
  }
  return x;
}

// Batch norms to fold into the convolution before them: the convolution's output read by the
// batch norm alone. Convolution layer index -> batch norm layer index.
std::map<int, int> batch_norms_to_fold(const proto::NetParameter& net) {
  std::map<std::string, int> writer;  // blob -> the layer that wrote its newest version
  std::map<int, int> readers;         // layer -> how many layers read its (first) top
  std::map<int, int> folds;
  for (int li = 0; li < net.layer_size(); ++li) {
    const proto::LayerParameter& layer = net.layer(li);
    for (const std::string& bottom : layer.bottom()) {
      const auto it = writer.find(bottom);
      if (it != writer.end()) ++readers[it->second];
    }
    if (layer.type() == "BatchNorm" && layer.bottom_size() == 1) {
      const auto it = writer.find(layer.bottom(0));
      if (it != writer.end() && net.layer(it->second).type() == "Convolution" &&
          net.layer(it->second).top_size() == 1) {
        folds[it->second] = li;
      }
    }
    for (const std::string& top : layer.top()) writer[top] = li;
  }
  std::erase_if(folds, [&](const auto& fold) { return readers[fold.first] != 1; });
  return folds;
}

void add_metadata(onnx::ModelProto& model, const std::string& key, const std::string& value) {
  auto* prop = model.add_metadata_props();
  prop->set_key(key);
  prop->set_value(value);
}

}  // namespace

std::string onnx_model(const proto::NetParameter& net, const std::map<std::string, Tensor>& weights,
                       const OnnxOptions& options, OnnxSummary* summary) {
  const OnnxPreprocess* pre = options.preprocess ? &*options.preprocess : nullptr;
  // Without Input dims the sample shape is --input's, else the record's.
  Shape sample_shape = options.sample_shape;
  if (sample_shape.ndim() == 0 && pre != nullptr) {
    sample_shape = Shape(pre->record.sample_shape().begin(), pre->record.sample_shape().end());
  }
  if (options.threshold) {
    const float t = *options.threshold;
    RUCHE_REQUIRE(t > 0 && t < 1) << "--threshold " << t << ": expected a value in (0, 1)";
  }
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
  for (const char* name : {"input", "logits", "probs", "output", "decision", "preprocess/scale",
                           "preprocess/bgr", "preprocess/mean_image", "preprocess/mean",
                           "preprocess/std", "decision/p1", "decision/ge"}) {
    g.reserve(name);
  }
  std::string head;  // the loss layer's output name: "logits" (classifier) or "output" (regression)
  Shape sample;
  // The main head: the loss with the highest loss_weight (the first of equal ones), as Net picks;
  // -1 for a deploy net, whose last layer's output is the "output".
  int main_loss = -1;
  float heaviest = -1.0f;
  for (int li = 0; li < net.layer_size(); ++li) {
    const auto& l = net.layer(li);
    if (l.type() != "SoftmaxWithLoss" && !is_float_target_loss(l.type())) continue;
    const float w = l.loss_weight_size() ? l.loss_weight(0) : 1.0f;
    if (w > heaviest) {
      heaviest = w;
      main_loss = li;
    }
  }
  std::unique_ptr<Net> shapes;  // built when a layer needs its input's rank
  const std::map<int, int> folds =
      options.fold_batch_norm ? batch_norms_to_fold(net) : std::map<int, int>();
  std::set<int> folded;  // batch norms already in their convolution
  for (const auto& fold : folds) folded.insert(fold.second);
  int layer_index = -1;
  for (const proto::LayerParameter& layer : net.layer()) {
    ++layer_index;
    g.begin_layer(layer);
    const std::string& type = layer.type();
    if (type == "Input") {
      RUCHE_REQUIRE(sample.ndim() == 0) << g.where() << ": a second Input layer";
      const auto& dims = layer.input_param().dim();
      sample = dims.empty() ? sample_shape : Shape(dims.begin(), dims.end());
      RUCHE_REQUIRE(sample.ndim() > 0)
          << g.where() << ": gives no input dims; pass the sample shape (--input C,H,W)";
      std::vector<std::string> dims_text{"N"};
      for (const std::int64_t d : sample) dims_text.push_back(std::to_string(d));
      onnx::ValueInfoProto& in = *graph.add_input();
      set_float_type(in, "input", dims_text);
      in.set_doc_string(input_text(pre == nullptr ? nullptr : &pre->record, sample));
      // The net reads the record's last step (or the input itself); the labels (top 1) feed only
      // the loss, not exported.
      g.alias(layer.top(0),
              pre == nullptr ? std::string("input") : add_preprocess(g, *pre, sample));
    } else if ((type == "SoftmaxWithLoss" || is_float_target_loss(type)) &&
               layer_index != main_loss) {
      continue;  // an auxiliary head (a lighter loss_weight): training only
    } else if (type == "SoftmaxWithLoss" || is_float_target_loss(type)) {
      head = type == "SoftmaxWithLoss" ? "logits" : "output";
      const std::string scores = g.input(0);
      // SigmoidCrossEntropyLoss reads logits: the output is their sigmoid, the prediction.
      g.node(type == "SigmoidCrossEntropyLoss" ? "Sigmoid" : "Identity", {scores}, {head},
             "/" + head);
      if (type == "SoftmaxWithLoss") {
        onnx::NodeProto& n = g.node("Softmax", {scores}, {"probs"});
        add_attr(n, "axis", std::int64_t{1});
      }
    } else if (type == "Dropout" || (type == "BatchNorm" && folded.count(layer_index))) {
      // Dropout is the identity at inference; a folded batch norm's convolution already normalised
      g.alias(layer.top(0), g.input(0));
    } else if (type == "Convolution") {
      const auto fold = folds.find(layer_index);
      convolution(g, layer, fold == folds.end() ? nullptr : &net.layer(fold->second));
    } else if (type == "Deconvolution") {
      deconvolution(g, layer);
    } else if (type == "Upsample") {
      upsample(g, layer);
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
      add_attr(n, "axis", static_cast<std::int64_t>(layer.softmax_param().axis()));
    } else if (type == "LRN") {
      lrn(g, layer);
    } else if (type == "Concat") {
      concat(g, layer);
    } else if (type == "Scale") {
      if (!shapes) shapes = one_sample_net(net, weights, sample);
      scale(g, layer, shapes->blob(layer.bottom(0)).ndim(),
            layer.bottom_size() == 2 ? shapes->blob(layer.bottom(1)).ndim()
                                     : g.weight_tensor("weight").ndim());
    } else if (type == "Power") {
      power(g, layer);
    } else {
      RUCHE_FAIL() << g.where() << ": cannot be exported to ONNX (no mapping for " << type << ")";
    }
  }
  RUCHE_REQUIRE(sample.ndim() > 0) << "the net has no Input layer: nothing to name the ONNX input";
  if (head.empty()) {
    // A deploy net: its last layer's first top is the output.
    const proto::LayerParameter& last = net.layer(net.layer_size() - 1);
    RUCHE_REQUIRE(last.top_size() > 0) << "the net's last layer '" << last.name()
                                       << "' has no top: nothing to name the ONNX output";
    g.begin_layer(last);
    head = "output";
    g.node("Identity", {g.input_of_blob(last.top(0))}, {head}, "/" + head);
  }

  // The outputs' shapes (ONNX wants them declared): the net built for one sample says them.
  const std::vector<std::string> out_dims = head_dims(net, weights, sample);
  set_float_type(*graph.add_output(), head, out_dims);
  if (head == "logits") set_float_type(*graph.add_output(), "probs", out_dims);
  if (options.threshold) {
    RUCHE_REQUIRE(head == "logits" && out_dims.size() == 2 && out_dims[1] == "2")
        << "--threshold needs a two-class classifier; this net's "
        << (head == "logits" ? "probs have " + out_dims.back() + " classes"
                             : std::string("head is a regression"));
    // decision = probs[:, 1] >= threshold: the comparison ruche's threshold report counts with
    // (count_at_threshold, engine/metrics/roc.cc: "positive iff score >= threshold"), in float32.
    const std::string one = g.scalar_i64("decision.class", 1);
    onnx::NodeProto& p1 = g.free_node("Gather", {"probs", one}, "decision/p1");
    add_attr(p1, "axis", std::int64_t{1});
    const std::string t = g.scalar("decision.threshold", *options.threshold);
    g.free_node("GreaterOrEqual", {"decision/p1", t}, "decision/ge");
    onnx::NodeProto& cast = g.free_node("Cast", {"decision/ge"}, "decision");
    add_attr(cast, "to", static_cast<std::int64_t>(onnx::TensorProto::INT64));
    set_float_type(*graph.add_output(), "decision", {"N"}, onnx::TensorProto::INT64);
  }

  if (pre != nullptr) {
    add_metadata(model, "ruche.preprocess", preprocess_json(pre->record));
    if (pre->record.class_names_size() > 0) {
      JsonWriter j;
      j.begin_array();
      for (const std::string& name : pre->record.class_names()) j.value(name);
      j.end_array();
      add_metadata(model, "ruche.class_names", j.str());
    }
  }
  add_metadata(model, "ruche.input", input_text(pre == nullptr ? nullptr : &pre->record, sample));
  if (options.threshold) {
    JsonWriter j;
    j.value(*options.threshold);  // the shortest text that reads back as this float
    add_metadata(model, "ruche.threshold", j.str());
  }

  for (const auto& [name, tensor] : weights) {
    RUCHE_REQUIRE(g.used().count(name) || ends_with(name, ".num_batches_tracked"))
        << "'" << name << "' belongs to no exported layer of the net";
  }
  if (summary) {
    summary->nodes = graph.node_size();
    summary->initializers = graph.initializer_size();
    summary->input = sample;
    summary->preprocess = pre != nullptr;
    summary->input_text = input_text(pre == nullptr ? nullptr : &pre->record, sample);
    summary->decision = options.threshold.has_value();
  }
  std::string bytes;
  RUCHE_CHECK(model.SerializeToString(&bytes)) << "serializing the ONNX model";
  return bytes;
}

std::optional<OnnxPreprocess> find_onnx_preprocess(const std::string& from) {
  namespace fs = std::filesystem;
  OnnxPreprocess p;
  if (const std::string checkpoint = checkpoint_of(from); !checkpoint.empty()) {
    const proto::CheckpointManifest manifest = checkpoint_manifest::read_manifest(checkpoint);
    if (manifest.preprocess().empty()) return std::nullopt;  // a run from before records
    p.where = checkpoint + "/manifest.pb (preprocess)";
    p.record = parse_preprocess(manifest.preprocess(), p.where);
    // RUN/ckpt/step-N: the mean image is in the run directory.
    fs::path dir = fs::path(checkpoint).lexically_normal();
    if (!dir.has_filename()) dir = dir.parent_path();
    dir = dir.parent_path().parent_path();
    p.dir = dir.empty() ? "." : dir.string();
    return p;
  }
  if (fs::is_directory(from)) {
    p.dir = from;
  } else {
    const fs::path dir = fs::path(weights_of(from)).parent_path();
    p.dir = dir.empty() ? "." : dir.string();
  }
  std::optional<proto::Preprocess> record = read_preprocess_in(p.dir);
  if (!record) return std::nullopt;
  p.record = std::move(*record);
  p.where = (fs::path(p.dir) / kPreprocessFile).string();
  return p;
}

OnnxSummary export_onnx(const std::string& from, const std::string& to, OnnxOptions options) {
  const proto::NetParameter net = options.net_file.empty()
                                      ? parse_net(export_net(from), from + " (net)", nullptr)
                                      : load_net(options.net_file, nullptr);
  if (!options.preprocess) options.preprocess = find_onnx_preprocess(from);
  std::map<std::string, Tensor> weights;
  if (const std::string checkpoint = checkpoint_of(from); !checkpoint.empty()) {
    for (auto& [name, tensor] : checkpoint_weights(load_checkpoint(checkpoint))) {
      weights.emplace(name, tensor);
    }
  } else {
    weights = load_npz(weights_of(from));
  }
  if (!options.net_file.empty()) {  // only the --net's layers' weights
    std::set<std::string> layers;
    for (const auto& layer : net.layer()) layers.insert(layer.name());
    for (auto it = weights.begin(); it != weights.end();) {
      it = layers.count(it->first.substr(0, it->first.rfind('.'))) ? std::next(it)
                                                                   : weights.erase(it);
    }
  }
  OnnxSummary summary;
  const std::string bytes = onnx_model(net, weights, options, &summary);
  checkpoint_io::write_file_durably(to, bytes);
  return summary;
}

}  // namespace ruche
