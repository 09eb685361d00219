// The state_dict a NetParameter implies, as "name [shape]" lines in layer order: the names and
// shapes torchvision's state_dict() lists, for comparison with tests/ops/reference/ref_models.py.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/layers/layer.h"
#include "engine/proto/ruche.pb.h"
#include "engine/tensor/shape.h"

namespace ruche::testing {

struct StateEntry {
  std::string name;  // "layer1.0.conv1.weight"
  Shape shape;
  bool learnable = true;  // false: running statistics and num_batches_tracked

  std::string line() const { return name + " " + shape.str(); }
};

namespace detail {

constexpr std::int64_t kBatch = 2;

inline std::vector<Shape> bottom_shapes(const proto::LayerParameter& layer,
                                        const std::map<std::string, Shape>& blobs) {
  std::vector<Shape> shapes;
  for (const auto& bottom : layer.bottom()) {
    const auto it = blobs.find(bottom);
    if (it == blobs.end()) {
      RUCHE_FAIL() << "layer '" << layer.name() << "' reads '" << bottom << "', not written before";
    }
    shapes.push_back(it->second);
  }
  return shapes;
}

inline std::int64_t window_out(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                               std::int64_t pad) {
  const std::int64_t out = (in + 2 * pad - kernel) / stride + 1;
  if (out < 1)
    RUCHE_FAIL() << "window " << kernel << " does not fit " << in << " (pad " << pad << ")";
  return out;
}

inline bool has_regression_loss(const proto::NetParameter& net) {
  return std::any_of(net.layer().begin(), net.layer().end(),
                     [](const auto& layer) { return layer.type() == "EuclideanLoss"; });
}

// torch.nn's parameters of one layer, and its top shape.
inline Shape expected_layer(const proto::LayerParameter& l, const std::vector<Shape>& in,
                            int num_classes, std::vector<StateEntry>& out) {
  const auto add = [&](const char* suffix, Shape shape, bool learnable = true) {
    out.push_back({l.name() + "." + suffix, shape, learnable});
  };
  const std::string& type = l.type();
  if (type == "Convolution") {
    const auto& p = l.convolution_param();
    const std::int64_t o = p.num_output(), k = p.kernel_size();
    add("weight", {o, in[0][1], k, k});
    if (p.bias_term()) add("bias", {o});
    return {kBatch, o, window_out(in[0][2], k, p.stride(), p.pad()),
            window_out(in[0][3], k, p.stride(), p.pad())};
  }
  if (type == "Deconvolution") {
    // torch.nn.ConvTranspose2d: weight [in, out / groups, k, k]; (in - 1) * stride - 2 * pad +
    // dilation * (k - 1) + output_padding + 1.
    const auto& p = l.convolution_param();
    const std::int64_t o = p.num_output(), k = p.kernel_size(), s = p.stride(), pad = p.pad(),
                       d = p.dilation(), g = p.group(), op = p.output_padding();
    add("weight", {in[0][1], o / g, k, k});
    if (p.bias_term()) add("bias", {o});
    const auto side = [&](std::int64_t x) { return (x - 1) * s - 2 * pad + d * (k - 1) + op + 1; };
    return {kBatch, o, side(in[0][2]), side(in[0][3])};
  }
  if (type == "Upsample") {
    const auto& p = l.upsample_param();
    const auto scaled = [&](std::int64_t x, bool has, float f) {
      return static_cast<std::int64_t>(static_cast<float>(x) * (has ? f : p.scale_factor()));
    };
    const std::int64_t h = p.height() ? p.height() : scaled(in[0][2], p.has_scale_h(), p.scale_h());
    const std::int64_t w = p.width() ? p.width() : scaled(in[0][3], p.has_scale_w(), p.scale_w());
    return {kBatch, in[0][1], h, w};
  }
  if (type == "BatchNorm") {
    const std::int64_t c = in[0][1];
    add("weight", {c});
    add("bias", {c});
    add("running_mean", {c}, false);
    add("running_var", {c}, false);
    add("num_batches_tracked", {}, false);
    return in[0];
  }
  if (type == "Pooling") {
    const auto& p = l.pooling_param();
    if (p.global_pooling()) return {kBatch, in[0][1], 1, 1};
    const std::int64_t k = p.kernel_size(), s = p.has_stride() ? p.stride() : k;
    return {kBatch, in[0][1], window_out(in[0][2], k, s, p.pad()),
            window_out(in[0][3], k, s, p.pad())};
  }
  if (type == "InnerProduct" || type == "Flatten") {
    const std::int64_t features = in[0].numel() / kBatch;
    if (type == "Flatten") return {kBatch, features};
    const auto& p = l.inner_product_param();
    const std::int64_t o = p.num_output() ? p.num_output() : num_classes;
    add("weight", {o, features});
    if (p.bias_term()) add("bias", {o});
    return {kBatch, o};
  }
  if (type == "Eltwise") {
    if (!(in[0] == in[1])) RUCHE_FAIL() << l.name() << ": " << in[0].str() << " + " << in[1].str();
    return in[0];
  }
  if (type == "SoftmaxWithLoss" || type == "EuclideanLoss") {
    if (type == "EuclideanLoss" && in[0].numel() != in[1].numel())
      RUCHE_FAIL() << l.name() << ": " << in[0].str() << " against " << in[1].str();
    return {};
  }
  if (type == "ReLU" || type == "Dropout" || type == "Sigmoid" || type == "TanH") return in[0];
  RUCHE_FAIL() << "expected_state_dict: no rule for layer type " << type;
  return {};
}

}  // namespace detail

// Walks the net's blob shapes itself with torch.nn's parameter shapes (Conv2d, ConvTranspose2d,
// BatchNorm2d, Linear), independently of engine/layers: a check of the generators alone. Throws
// ruche::Error on a bottom that no earlier layer wrote or on shapes that do not fit.
inline std::vector<StateEntry> expected_state_dict(const proto::NetParameter& net,
                                                   int num_classes) {
  std::map<std::string, Shape> blobs;
  std::vector<StateEntry> entries;
  for (const auto& layer : net.layer()) {
    if (layer.type() == "Input") {
      Shape data{detail::kBatch};
      for (const auto d : layer.input_param().dim()) data.push_back(d);
      blobs["data"] = data;
      // A reconstruction's target is the input itself; a class label is one index.
      blobs["label"] = detail::has_regression_loss(net) ? data : Shape{detail::kBatch};
      continue;
    }
    blobs[layer.top(0)] =
        detail::expected_layer(layer, detail::bottom_shapes(layer, blobs), num_classes, entries);
  }
  return entries;
}

// The same from the layers themselves: create_layer(), reshape() and param_decls() in order, as
// the Net builds them. Throws ruche::Error when a layer type is not registered yet.
inline std::vector<StateEntry> layer_state_dict(const proto::NetParameter& net, int num_classes) {
  std::map<std::string, Shape> blobs;
  std::vector<StateEntry> entries;
  for (const auto& p : net.layer()) {
    if (p.type() == "Input") {
      Shape data{detail::kBatch};
      for (const auto d : p.input_param().dim()) data.push_back(d);
      blobs["data"] = data;
      blobs["label"] = detail::has_regression_loss(net) ? data : Shape{detail::kBatch};
      continue;
    }
    const auto layer = create_layer(p);
    const auto tops = layer->reshape(detail::bottom_shapes(p, blobs), num_classes);
    for (int i = 0; i < p.top_size() && i < static_cast<int>(tops.size()); ++i) {
      blobs[p.top(i)] = tops[static_cast<std::size_t>(i)];
    }
    for (const auto& decl : layer->param_decls()) {
      entries.push_back({p.name() + "." + decl.suffix, decl.shape, decl.role != ParamRole::buffer});
    }
  }
  return entries;
}

// Whether create_layer() knows every layer type of `net` (the layers land one by one).
inline bool all_layers_registered(const proto::NetParameter& net) {
  const auto known = known_layer_types();
  return std::all_of(net.layer().begin(), net.layer().end(), [&](const auto& layer) {
    return std::find(known.begin(), known.end(), layer.type()) != known.end();
  });
}

inline std::vector<std::string> lines_of(const std::vector<StateEntry>& entries) {
  std::vector<std::string> lines;
  lines.reserve(entries.size());
  for (const auto& e : entries) lines.push_back(e.line());
  return lines;
}

inline std::int64_t learnable_count(const std::vector<StateEntry>& entries) {
  std::int64_t n = 0;
  for (const auto& e : entries) n += e.learnable ? e.shape.numel() : 0;
  return n;
}

}  // namespace ruche::testing
