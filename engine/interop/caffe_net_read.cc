// Caffe's net files read as V2 (engine/interop/caffe_net_read.h).
#include "engine/interop/caffe_net_read.h"

#include <algorithm>
#include <regex>

#include "engine/error.h"
#include "engine/interop/caffe_import.h"
#include "engine/proto/text_format.h"

namespace ruche {
namespace {

namespace cf = ruche::caffe_import;

// V1's type enum onto V2's type names (Caffe's upgrade table).
std::string v2_type(cf::V1LayerParameter::LayerType t) {
  using V1 = cf::V1LayerParameter;
  switch (t) {
    case V1::ABSVAL:
      return "AbsVal";
    case V1::ACCURACY:
      return "Accuracy";
    case V1::ARGMAX:
      return "ArgMax";
    case V1::BNLL:
      return "BNLL";
    case V1::CONCAT:
      return "Concat";
    case V1::CONTRASTIVE_LOSS:
      return "ContrastiveLoss";
    case V1::CONVOLUTION:
      return "Convolution";
    case V1::DATA:
      return "Data";
    case V1::DECONVOLUTION:
      return "Deconvolution";
    case V1::DROPOUT:
      return "Dropout";
    case V1::DUMMY_DATA:
      return "DummyData";
    case V1::EUCLIDEAN_LOSS:
      return "EuclideanLoss";
    case V1::ELTWISE:
      return "Eltwise";
    case V1::EXP:
      return "Exp";
    case V1::FLATTEN:
      return "Flatten";
    case V1::HDF5_DATA:
      return "HDF5Data";
    case V1::HDF5_OUTPUT:
      return "HDF5Output";
    case V1::HINGE_LOSS:
      return "HingeLoss";
    case V1::IM2COL:
      return "Im2col";
    case V1::IMAGE_DATA:
      return "ImageData";
    case V1::INFOGAIN_LOSS:
      return "InfogainLoss";
    case V1::INNER_PRODUCT:
      return "InnerProduct";
    case V1::LRN:
      return "LRN";
    case V1::MEMORY_DATA:
      return "MemoryData";
    case V1::MULTINOMIAL_LOGISTIC_LOSS:
      return "MultinomialLogisticLoss";
    case V1::MVN:
      return "MVN";
    case V1::POOLING:
      return "Pooling";
    case V1::POWER:
      return "Power";
    case V1::RELU:
      return "ReLU";
    case V1::SIGMOID:
      return "Sigmoid";
    case V1::SIGMOID_CROSS_ENTROPY_LOSS:
      return "SigmoidCrossEntropyLoss";
    case V1::SILENCE:
      return "Silence";
    case V1::SOFTMAX:
      return "Softmax";
    case V1::SOFTMAX_LOSS:
      return "SoftmaxWithLoss";
    case V1::SPLIT:
      return "Split";
    case V1::SLICE:
      return "Slice";
    case V1::TANH:
      return "TanH";
    case V1::WINDOW_DATA:
      return "WindowData";
    case V1::THRESHOLD:
      return "Threshold";
    case V1::NONE:
      return "";
  }
  return "";
}

// One V1 layer as V2: the same sub-messages, blobs_lr and weight_decay as param blocks.
cf::LayerParameter upgraded(const cf::V1LayerParameter& v1, const std::string& where) {
  RUCHE_REQUIRE(!v1.has_layer()) << where << ": a V0 Caffe net (a 'layer' inside 'layers', '"
                                 << v1.name()
                                 << "'); upgrade it with Caffe's upgrade_net_proto_text first";
  cf::LayerParameter l;
  l.set_name(v1.name());
  l.set_type(v2_type(v1.type()));
  RUCHE_REQUIRE(!l.type().empty()) << where << ": V1 layer '" << v1.name() << "' has no type";
  *l.mutable_bottom() = v1.bottom();
  *l.mutable_top() = v1.top();
  *l.mutable_include() = v1.include();
  *l.mutable_exclude() = v1.exclude();
  *l.mutable_blobs() = v1.blobs();
  *l.mutable_loss_weight() = v1.loss_weight();
  const int params = std::max({v1.blobs_lr_size(), v1.weight_decay_size(), v1.param_size()});
  for (int i = 0; i < params; ++i) {
    auto* p = l.add_param();
    if (i < v1.param_size()) p->set_name(v1.param(i));
    if (i < v1.blobs_lr_size()) p->set_lr_mult(v1.blobs_lr(i));
    if (i < v1.weight_decay_size()) p->set_decay_mult(v1.weight_decay(i));
  }
  if (v1.has_accuracy_param()) *l.mutable_accuracy_param() = v1.accuracy_param();
  if (v1.has_concat_param()) *l.mutable_concat_param() = v1.concat_param();
  if (v1.has_convolution_param()) *l.mutable_convolution_param() = v1.convolution_param();
  if (v1.has_data_param()) *l.mutable_data_param() = v1.data_param();
  if (v1.has_dropout_param()) *l.mutable_dropout_param() = v1.dropout_param();
  if (v1.has_eltwise_param()) *l.mutable_eltwise_param() = v1.eltwise_param();
  if (v1.has_image_data_param()) *l.mutable_image_data_param() = v1.image_data_param();
  if (v1.has_inner_product_param()) *l.mutable_inner_product_param() = v1.inner_product_param();
  if (v1.has_lrn_param()) *l.mutable_lrn_param() = v1.lrn_param();
  if (v1.has_pooling_param()) *l.mutable_pooling_param() = v1.pooling_param();
  if (v1.has_power_param()) *l.mutable_power_param() = v1.power_param();
  if (v1.has_relu_param()) *l.mutable_relu_param() = v1.relu_param();
  if (v1.has_softmax_param()) *l.mutable_softmax_param() = v1.softmax_param();
  if (v1.has_transform_param()) *l.mutable_transform_param() = v1.transform_param();
  if (v1.has_loss_param()) *l.mutable_loss_param() = v1.loss_param();
  return l;
}

cf::NetParameter upgrade_v1(cf::NetParameter net, const std::string& where) {
  if (net.layers_size() == 0) return net;
  RUCHE_REQUIRE(net.layer_size() == 0)
      << where << ": both V1 'layers' and V2 'layer' blocks; Caffe reads one kind per net";
  for (const auto& v1 : net.layers()) *net.add_layer() = upgraded(v1, where);
  net.clear_layers();
  return net;
}

bool rule_met(const cf::NetStateRule& r, const cf::NetState& s) {
  if (r.has_phase() && r.phase() != s.phase()) return false;
  if (r.has_min_level() && s.level() < r.min_level()) return false;
  if (r.has_max_level() && s.level() > r.max_level()) return false;
  const auto has = [&](const std::string& stage) {
    return std::find(s.stage().begin(), s.stage().end(), stage) != s.stage().end();
  };
  for (const auto& stage : r.stage()) {
    if (!has(stage)) return false;
  }
  for (const auto& stage : r.not_stage()) {
    if (has(stage)) return false;
  }
  return true;
}

}  // namespace

cf::NetParameter read_caffe_net_text(const std::string& text, const std::string& where) {
  static const std::regex v0(R"(\blayers\s*\{\s*layer\s*\{)");
  RUCHE_REQUIRE(!std::regex_search(text, v0))
      << where << ": a V0 Caffe net (a 'layer' inside 'layers'); upgrade it with Caffe's "
      << "upgrade_net_proto_text first";
  cf::NetParameter net;
  parse_prototxt(text, where, net);
  return upgrade_v1(std::move(net), where);
}

cf::NetParameter read_caffe_net_binary(const std::string& bytes, const std::string& where) {
  cf::NetParameter net;
  RUCHE_REQUIRE(net.ParseFromString(bytes)) << where << ": not a Caffe NetParameter (.caffemodel)";
  return upgrade_v1(std::move(net), where);
}

cf::NetState caffe_train_state(const cf::NetParameter& net) {
  cf::NetState state;
  state.set_phase(cf::TRAIN);
  state.MergeFrom(net.state());
  return state;
}

bool caffe_layer_in_state(const cf::LayerParameter& l, const cf::NetState& state,
                          const std::string& where) {
  RUCHE_REQUIRE(l.include_size() == 0 || l.exclude_size() == 0)
      << where << ": layer '" << l.name()
      << "' has both include and exclude rules (Caffe refuses it)";
  if (l.include_size() > 0) {
    return std::any_of(l.include().begin(), l.include().end(),
                       [&](const auto& r) { return rule_met(r, state); });
  }
  return std::none_of(l.exclude().begin(), l.exclude().end(),
                      [&](const auto& r) { return rule_met(r, state); });
}

std::string caffe_only_field(const std::string& text) {
  static const std::regex comment("#[^\n]*");
  static const std::regex field(
      R"((^|\n)[ \t]*(layers|input|input_dim|input_shape)[ \t]*[:{]|)"
      R"(\b(include|exclude|data_param|image_data_param|transform_param|blobs_lr|)"
      R"(moving_average_fraction|variance_norm|round_mode|normalization|normalize|)"
      R"(propagate_down|force_backward)[ \t]*[:{]|)"
      R"(\binput_param[ \t\n]*\{[ \t\n]*shape)");
  const std::string code = std::regex_replace(text, comment, "");
  std::smatch m;
  if (!std::regex_search(code, m, field)) return "";
  for (int group : {2, 3}) {
    if (m[group].matched) return m[group].str();
  }
  return "input_param { shape }";
}

}  // namespace ruche
