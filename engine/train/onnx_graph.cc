#include "engine/train/onnx_graph.h"

#include <cstring>

#include "engine/error.h"

namespace ruche::onnx_detail {

void set_float_type(onnx::ValueInfoProto& info, const std::string& name,
                    const std::vector<std::string>& dims, int elem_type) {
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

std::string GraphBuilder::input_of_blob(const std::string& blob) const {
  const auto it = values_.find(blob);
  RUCHE_REQUIRE(it != values_.end()) << where_ << ": '" << blob << "' is written by no layer";
  return it->second;
}

std::string GraphBuilder::input(int i) const {
  RUCHE_REQUIRE(i < layer_->bottom_size()) << where_ << ": expected a bottom " << i;
  const auto it = values_.find(layer_->bottom(i));
  RUCHE_REQUIRE(it != values_.end())
      << where_ << ": bottom '" << layer_->bottom(i) << "' is written by no earlier layer";
  return it->second;
}

std::string GraphBuilder::output(int i) {
  RUCHE_REQUIRE(i < layer_->top_size()) << where_ << ": expected a top " << i;
  std::string value = layer_->name();
  // Appended piecewise: GCC 12's -Wrestrict misfires on ":" + std::to_string(i) here.
  if (i > 0) value += ':' + std::to_string(i);
  RUCHE_REQUIRE(taken_.insert(value).second)
      << where_ << ": the ONNX value name '" << value << "' is already taken (layer names "
      << "must be unique)";
  values_[layer_->top(i)] = value;
  return value;
}

onnx::NodeProto& GraphBuilder::node(const std::string& op, const std::vector<std::string>& inputs,
                                    const std::vector<std::string>& outputs,
                                    const std::string& suffix) {
  onnx::NodeProto& n = *graph_.add_node();
  n.set_op_type(op);
  n.set_name(layer_->name() + suffix);
  for (const auto& in : inputs) n.add_input(in);
  for (const auto& out : outputs) n.add_output(out);
  return n;
}

onnx::NodeProto& GraphBuilder::free_node(const std::string& op,
                                         const std::vector<std::string>& inputs,
                                         const std::string& output) {
  onnx::NodeProto& n = *graph_.add_node();
  n.set_op_type(op);
  n.set_name(output);
  for (const auto& in : inputs) n.add_input(in);
  n.add_output(output);
  return n;
}

std::string GraphBuilder::weight(const std::string& suffix) {
  std::string name = layer_->name() + "." + suffix;
  const auto it = weights_.find(name);
  RUCHE_REQUIRE(it != weights_.end()) << where_ << ": the weights hold no '" << name << "'";
  if (used_.insert(name).second) add_initializer(name, it->second);
  return name;
}

const Tensor* GraphBuilder::folded_weight(const std::string& layer, const std::string& suffix,
                                          bool optional) {
  const std::string name = layer + "." + suffix;
  const auto it = weights_.find(name);
  RUCHE_REQUIRE(optional || it != weights_.end())
      << where_ << ": the weights hold no '" << name << "'";
  if (it == weights_.end()) return nullptr;
  used_.insert(name);
  return &it->second;
}

std::string GraphBuilder::constant(const std::string& name, const std::vector<float>& values) {
  return constant(name, Shape{static_cast<std::int64_t>(values.size())}, values);
}

std::string GraphBuilder::constant(const std::string& name, const Shape& shape,
                                   const std::vector<float>& values) {
  RUCHE_CHECK(shape.numel() == static_cast<std::int64_t>(values.size())) << name;
  Tensor t = Tensor::empty(shape, DType::f32);
  std::memcpy(t.data<float>(), values.data(), values.size() * sizeof(float));
  add_initializer(name, t);
  return name;
}

std::string GraphBuilder::scalar(const std::string& name, float value) {
  return constant(name, Shape{}, std::vector<float>{value});
}

std::string GraphBuilder::scalar_i64(const std::string& name, std::int64_t value) {
  onnx::TensorProto& t = *graph_.add_initializer();
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::INT64);
  t.add_int64_data(value);
  return name;
}

std::string GraphBuilder::constant_i64(const std::string& name,
                                       const std::vector<std::int64_t>& values) {
  onnx::TensorProto& t = *graph_.add_initializer();
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::INT64);
  t.add_dims(static_cast<std::int64_t>(values.size()));
  for (const std::int64_t v : values) t.add_int64_data(v);
  return name;
}

void GraphBuilder::add_initializer(const std::string& name, const Tensor& tensor) {
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

}  // namespace ruche::onnx_detail
