#include "engine/models/net_builder.h"

namespace ruche::models {

NetBuilder::NetBuilder(const std::string& net_name, const Shape& sample) {
  net_.set_name(net_name);
  auto& input = *net_.add_layer();
  input.set_name("data");
  input.set_type("Input");
  input.add_top("data");
  input.add_top("label");
  for (const auto d : sample) input.mutable_input_param()->add_dim(d);
  cursor_ = "data";
}

proto::LayerParameter& NetBuilder::add_layer(const std::string& name, const std::string& type,
                                             bool in_place) {
  auto& layer = *net_.add_layer();
  layer.set_name(name);
  layer.set_type(type);
  layer.add_bottom(cursor_);
  if (!in_place) cursor_ = name;
  layer.add_top(cursor_);
  return layer;
}

void NetBuilder::conv(const std::string& name, const ConvSpec& spec) {
  auto& p = *add_layer(name, "Convolution").mutable_convolution_param();
  p.set_num_output(static_cast<unsigned>(spec.num_output));
  p.set_kernel_size(static_cast<unsigned>(spec.kernel));
  if (spec.stride != 1) p.set_stride(static_cast<unsigned>(spec.stride));
  if (spec.pad != 0) p.set_pad(static_cast<unsigned>(spec.pad));
  if (!spec.bias) p.set_bias_term(false);
}

void NetBuilder::deconv(const std::string& name, const ConvSpec& spec) {
  auto& p = *add_layer(name, "Deconvolution").mutable_convolution_param();
  p.set_num_output(static_cast<unsigned>(spec.num_output));
  p.set_kernel_size(static_cast<unsigned>(spec.kernel));
  if (spec.stride != 1) p.set_stride(static_cast<unsigned>(spec.stride));
  if (spec.pad != 0) p.set_pad(static_cast<unsigned>(spec.pad));
  if (spec.output_padding != 0) p.set_output_padding(static_cast<unsigned>(spec.output_padding));
  if (!spec.bias) p.set_bias_term(false);
}

void NetBuilder::upsample(const std::string& name, int scale) {
  add_layer(name, "Upsample").mutable_upsample_param()->set_scale_factor(static_cast<float>(scale));
}

void NetBuilder::sigmoid(const std::string& name) { add_layer(name, "Sigmoid"); }

void NetBuilder::batch_norm(const std::string& name) { add_layer(name, "BatchNorm"); }

void NetBuilder::relu(const std::string& name) { add_layer(name, "ReLU", /*in_place=*/true); }

void NetBuilder::max_pool(const std::string& name, int kernel, int stride, int pad) {
  auto& p = *add_layer(name, "Pooling").mutable_pooling_param();
  p.set_pool(proto::PoolingParameter::MAX);
  p.set_kernel_size(static_cast<unsigned>(kernel));
  p.set_stride(static_cast<unsigned>(stride));
  if (pad != 0) p.set_pad(static_cast<unsigned>(pad));
}

void NetBuilder::global_avg_pool(const std::string& name) {
  auto& p = *add_layer(name, "Pooling").mutable_pooling_param();
  p.set_pool(proto::PoolingParameter::AVE);
  p.set_global_pooling(true);
}

void NetBuilder::inner_product(const std::string& name, int num_output) {
  auto& p = *add_layer(name, "InnerProduct").mutable_inner_product_param();
  p.set_num_output(static_cast<unsigned>(num_output));
}

void NetBuilder::dropout(const std::string& name, float ratio) {
  add_layer(name, "Dropout", /*in_place=*/true).mutable_dropout_param()->set_dropout_ratio(ratio);
}

void NetBuilder::flatten(const std::string& name) { add_layer(name, "Flatten"); }

void NetBuilder::add(const std::string& name, const std::string& other) {
  auto& layer = add_layer(name, "Eltwise");
  layer.add_bottom(other);
  layer.mutable_eltwise_param()->set_operation(proto::EltwiseParameter::SUM);
}

proto::NetParameter NetBuilder::finish() {
  auto& loss = *net_.add_layer();
  loss.set_name("loss");
  loss.set_type("SoftmaxWithLoss");
  loss.add_bottom(cursor_);
  loss.add_bottom("label");
  loss.add_top("loss");
  return net_;
}

proto::NetParameter NetBuilder::finish_reconstruction() {
  auto& loss = *net_.add_layer();
  loss.set_name("loss");
  loss.set_type("EuclideanLoss");
  loss.add_bottom(cursor_);
  loss.add_bottom("label");
  loss.add_top("loss");
  return net_;
}

void conv_bn_relu(NetBuilder& b, const std::string& conv, const std::string& bn,
                  const std::string& relu, const ConvSpec& spec) {
  ConvSpec no_bias = spec;
  no_bias.bias = false;
  b.conv(conv, no_bias);
  b.batch_norm(bn);
  b.relu(relu);
}

}  // namespace ruche::models
