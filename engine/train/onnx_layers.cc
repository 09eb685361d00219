#include "engine/train/onnx_layers.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/layers/layer_util.h"

namespace ruche::onnx_detail {
namespace {

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
  const auto [k, s, p, output_padding] = layers::conv_window(c);
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
  const auto [k, s, p, op] = layers::conv_window(c);
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
  const auto [k, s, p] = layers::pool_window(q);
  onnx::NodeProto& n = g.node(max ? "MaxPool" : "AveragePool", {g.input(0)}, {g.output()});
  add_attr(n, "kernel_shape", std::vector<std::int64_t>{k.h, k.w});
  add_attr(n, "strides", std::vector<std::int64_t>{s.h, s.w});
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

// ReLU, or LeakyRelu with a negative slope.
void relu(GraphBuilder& g, const proto::LayerParameter& layer) {
  const float slope = layer.relu_param().negative_slope();
  const std::string x = g.input(0);
  onnx::NodeProto& n = g.node(slope > 0 ? "LeakyRelu" : "Relu", {x}, {g.output()});
  if (slope > 0) add_attr(n, "alpha", slope);
}

void sigmoid_or_tanh(GraphBuilder& g, const proto::LayerParameter& layer) {
  g.node(layer.type() == "Sigmoid" ? "Sigmoid" : "Tanh", {g.input(0)}, {g.output()});
}

void softmax(GraphBuilder& g, const proto::LayerParameter& layer) {
  onnx::NodeProto& n = g.node("Softmax", {g.input(0)}, {g.output()});
  add_attr(n, "axis", static_cast<std::int64_t>(layer.softmax_param().axis()));
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

}  // namespace

BatchNormFolds::BatchNormFolds(const proto::NetParameter& net, bool fold) {
  if (!fold) return;
  for (const auto& [conv, bn] : batch_norms_to_fold(net)) {
    into_[conv] = &net.layer(bn);
    folded_.insert(bn);
  }
}

const proto::LayerParameter* BatchNormFolds::into(int conv) const {
  const auto it = into_.find(conv);
  return it == into_.end() ? nullptr : it->second;
}

namespace {

// The layers whose translation needs nothing but the layer itself.
using Translator = void (*)(GraphBuilder&, const proto::LayerParameter&);
const std::map<std::string, Translator, std::less<>>& translators() {
  static const std::map<std::string, Translator, std::less<>> table = {
      {"Deconvolution", deconvolution},
      {"Upsample", upsample},
      {"BatchNorm", batch_norm},
      {"ReLU", relu},
      {"Sigmoid", sigmoid_or_tanh},
      {"TanH", sigmoid_or_tanh},
      {"Pooling", pooling},
      {"InnerProduct", inner_product},
      {"Eltwise", eltwise},
      {"Flatten", flatten},
      {"Softmax", softmax},
      {"LRN", lrn},
      {"Concat", concat},
      {"Power", power}};
  return table;
}

}  // namespace

void add_layer(GraphBuilder& g, const proto::LayerParameter& layer, int index,
               const BatchNormFolds& folds, const std::function<const Net&()>& one_sample_net) {
  const std::string& type = layer.type();
  if (type == "Dropout" || (type == "BatchNorm" && folds.folded(index))) {
    // Dropout is the identity at inference; a folded batch norm's convolution already normalised
    g.alias(layer.top(0), g.input(0));
  } else if (type == "Convolution") {
    convolution(g, layer, folds.into(index));
  } else if (type == "Scale") {
    const Net& shapes = one_sample_net();
    scale(g, layer, shapes.blob(layer.bottom(0)).ndim(),
          layer.bottom_size() == 2 ? shapes.blob(layer.bottom(1)).ndim()
                                   : g.weight_tensor("weight").ndim());
  } else if (const auto it = translators().find(type); it != translators().end()) {
    it->second(g, layer);
  } else {
    RUCHE_FAIL() << g.where() << ": cannot be exported to ONNX (no mapping for " << type << ")";
  }
}

}  // namespace ruche::onnx_detail
