// The ONNX graph as `ruche export --format onnx` builds it (engine/train/onnx_export.h): the
// GraphBuilder that maps ruche blobs to ONNX values and adds nodes and initializers, and the small
// helpers that fill onnx.proto's messages. Internal to the ONNX export (onnx_*.cc, the only files
// that see onnx.proto's messages and their defines, CMakeLists.txt).
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/proto/ruche.pb.h"
#include "engine/tensor/tensor.h"

namespace ruche::onnx_detail {

// `info` named `name`, a tensor of elem_type with `dims`: a number is a fixed dimension, any
// other text a symbolic one ("N").
void set_float_type(onnx::ValueInfoProto& info, const std::string& name,
                    const std::vector<std::string>& dims, int elem_type = onnx::TensorProto::FLOAT);

void add_attr(onnx::NodeProto& node, const std::string& name, std::int64_t value);
void add_attr(onnx::NodeProto& node, const std::string& name, float value);
void add_attr(onnx::NodeProto& node, const std::string& name,
              const std::vector<std::int64_t>& values);
void add_attr(onnx::NodeProto& node, const std::string& name, const std::string& value);

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
  std::string input_of_blob(const std::string& blob) const;
  // The value of bottom i of the current layer.
  std::string input(int i) const;
  // The value for top i of the current layer: the layer's name (plus ":i" past the first).
  std::string output(int i = 0);

  void alias(const std::string& blob, const std::string& value) { values_[blob] = value; }
  void reserve(const std::string& value) { taken_.insert(value); }

  // A node of the current layer, named after it (plus `suffix`).
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& suffix = "");
  // A node outside any layer (the preprocessing in front of the net, the decision behind it).
  onnx::NodeProto& free_node(const std::string& op, const std::vector<std::string>& inputs,
                             const std::string& output);

  // The initializer for "<layer>.<suffix>", added on first use; a ruche::Error when absent.
  std::string weight(const std::string& suffix);
  const Tensor& weight_tensor(const std::string& suffix) { return weights_.at(weight(suffix)); }
  bool has_weight(const std::string& suffix) const {
    return weights_.count(layer_->name() + "." + suffix) != 0;
  }
  void mark_used(const std::string& name) { used_.insert(name); }
  // The weight "<layer>.<suffix>" of another layer, marked used but not added: its values enter a
  // folded constant. nullptr when absent and `optional`.
  const Tensor* folded_weight(const std::string& layer, const std::string& suffix,
                              bool optional = false);
  const std::set<std::string>& used() const { return used_; }

  // A constant initializer of floats (batch norm without affine: scale 1, shift 0).
  std::string constant(const std::string& name, const std::vector<float>& values);
  // A float initializer of the given shape (its numel values).
  std::string constant(const std::string& name, const Shape& shape,
                       const std::vector<float>& values);
  // A 0-d float initializer.
  std::string scalar(const std::string& name, float value);
  // A 0-d int64 initializer (a Gather index that drops its axis).
  std::string scalar_i64(const std::string& name, std::int64_t value);
  std::string constant_i64(const std::string& name, const std::vector<std::int64_t>& values);

 private:
  void add_initializer(const std::string& name, const Tensor& tensor);

  onnx::GraphProto& graph_;
  const std::map<std::string, Tensor>& weights_;
  const proto::LayerParameter* layer_ = nullptr;
  std::string where_;
  std::map<std::string, std::string> values_;  // ruche blob -> current ONNX value
  std::set<std::string> taken_;                // ONNX value names in use
  std::set<std::string> used_;                 // weights in the graph
};

}  // namespace ruche::onnx_detail
