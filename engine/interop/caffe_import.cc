// `ruche import caffe` (engine/interop/caffe_import.h): Caffe's meaning carried onto ruche's
// schema, layer by layer; every change of meaning and every dropped setting is a report line.
#include "engine/interop/caffe_import.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>

#include "engine/checkpoint/file_io.h"
#include "engine/data/preprocess.h"
#include "engine/error.h"
#include "engine/graph/net.h"
#include "engine/interop/caffe_import.pb.h"
#include "engine/interop/caffe_net_read.h"
#include "engine/proto/text_format.h"
#include "engine/tensor/npy.h"
#include "engine/train/weights.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;
namespace cf = ruche::caffe_import;
using checkpoint_io::make_directories;
using checkpoint_io::read_file;
using checkpoint_io::write_file_durably;
using Norm = cf::LossParameter::NormalizationMode;

std::string dims_text(const std::vector<std::int64_t>& d) {
  std::ostringstream s;
  s << "[";
  for (std::size_t i = 0; i < d.size(); ++i) s << (i ? ", " : "") << d[i];
  s << "]";
  return s.str();
}

std::string number(float v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Where one tensor of a ruche layer comes from in the .caffemodel.
struct BlobSource {
  std::string layer;        // the Caffe layer
  int blob = -1;            // its blob; -1: zeros (a merged Scale without a bias)
  bool bn_factor = false;   // divided by the layer's blob 2, Caffe's BatchNorm scale factor
  bool transposed = false;  // InnerProduct transpose: true stores the weight as [K, O]
};

// A loss layer whose Caffe divisor becomes a loss_weight once the shapes are known.
struct LossNorm {
  int layer = 0;     // in the mapped net
  std::string type;  // Caffe's
  Norm mode = cf::LossParameter::VALID;
  float weight = 1.0f;  // Caffe's loss_weight
};

struct Mapping {
  proto::NetParameter net;
  std::map<std::string, std::vector<BlobSource>> sources;  // ruche layer -> its tensors' sources
  std::vector<LossNorm> losses;
  const cf::LayerParameter* data = nullptr;    // the training Data or ImageData layer
  std::vector<std::int32_t> accuracy_ignores;  // the Accuracy layers' ignore_label
  int batch = 0;                               // the batch an Input shape gives
};

// Caffe's filler by its name and scale onto ruche's; a filler with no type is Caffe's constant 0.
void map_filler(const cf::FillerParameter& in, proto::FillerParameter* out, const std::string& who,
                std::vector<std::string>* report) {
  const std::string& t = in.type();
  out->Clear();
  if (t == "constant") {
    out->set_type("constant");
    out->set_value(in.value());
  } else if (t == "gaussian") {
    out->set_type("normal");
    out->set_mean(in.mean());
    out->set_std(in.std());
    if (in.sparse() >= 0)
      report->push_back(who + ": gaussian filler's sparse " + std::to_string(in.sparse()) +
                        " dropped: every weight is drawn");
  } else if (t == "uniform") {
    out->set_type("uniform");
    out->set_min(in.min());
    out->set_max(in.max());
  } else if (t == "xavier" || t == "msra") {
    out->set_type(t);
    const auto norm = in.variance_norm();
    out->set_mode(norm == cf::FillerParameter::FAN_IN    ? "fan_in"
                  : norm == cf::FillerParameter::FAN_OUT ? "fan_out"
                                                         : "average");
  } else {
    out->set_type("default");
    report->push_back(who + ": filler '" + t +
                      "' is not mapped; torch.nn's default initialisation");
  }
}

void map_params(const cf::LayerParameter& l, proto::LayerParameter* out) {
  for (const auto& p : l.param()) {
    auto* q = out->add_param();
    q->set_lr_mult(p.lr_mult());
    q->set_decay_mult(p.decay_mult());
  }
}

// Caffe's normalization of a loss layer: loss_param.normalization, else the older normalize, else
// the layer's default (SigmoidCrossEntropyLoss: BATCH_SIZE; SoftmaxWithLoss: VALID).
Norm caffe_normalization(const cf::LayerParameter& l) {
  const auto& c = l.loss_param();
  const bool sigmoid = l.type() == "SigmoidCrossEntropyLoss";
  if (c.has_normalization()) return c.normalization();
  if (c.has_normalize())
    return c.normalize() ? cf::LossParameter::VALID : cf::LossParameter::BATCH_SIZE;
  return sigmoid ? cf::LossParameter::BATCH_SIZE : cf::LossParameter::VALID;
}

struct Mapper {
  std::string where;
  std::vector<std::string>* report;
  std::vector<const cf::LayerParameter*> layers;  // the training net's, in order
  Mapping m;

  std::string who(const cf::LayerParameter& l) const {
    return where + ": layer '" + l.name() + "' (" + l.type() + ")";
  }

  proto::LayerParameter* start(const cf::LayerParameter& l, const std::string& type) {
    auto* out = m.net.add_layer();
    out->set_name(l.name());
    out->set_type(type);
    for (const auto& b : l.bottom()) out->add_bottom(b);
    for (const auto& t : l.top()) out->add_top(t);
    // A loss layer without a top gets one, as Caffe's AutoTopBlobs gives it.
    if (l.top_size() == 0 && type.ends_with("Loss")) out->add_top(l.name());
    for (float w : l.loss_weight()) out->add_loss_weight(w);
    return out;
  }

  // Blobs 0 .. n-1 of the layer itself, in order.
  void own_blobs(const cf::LayerParameter& l, int n, bool transposed = false) {
    auto& s = m.sources[l.name()];
    for (int i = 0; i < n; ++i) s.push_back({l.name(), i, false, transposed && i == 0});
  }

  void input_layer(const std::string& name, const std::vector<std::string>& tops,
                   const std::vector<std::int64_t>& shape) {
    auto* out = m.net.add_layer();
    out->set_name(name);
    out->set_type("Input");
    for (const auto& t : tops) out->add_top(t);
    auto* ip = out->mutable_input_param();
    for (std::size_t i = 1; i < shape.size(); ++i) ip->add_dim(shape[i]);
    if (!shape.empty()) m.batch = static_cast<int>(shape[0]);
  }

  void conv(const cf::LayerParameter& l, const std::string& type) {
    const auto& c = l.convolution_param();
    RUCHE_REQUIRE(c.axis() == 1 && c.kernel_size_size() <= 2 && c.stride_size() <= 2 &&
                  c.pad_size() <= 2 && c.dilation_size() <= 1)
        << who(l) << ": only 2-D convolutions over axis 1 are mapped";
    auto* out = start(l, type);
    auto* p = out->mutable_convolution_param();
    p->set_num_output(c.num_output());
    p->set_bias_term(c.bias_term());
    const auto pick = [](const google::protobuf::RepeatedField<std::uint32_t>& v, int i,
                         bool has_hw, std::uint32_t hw, std::uint32_t dflt) {
      if (has_hw) return hw;
      if (v.empty()) return dflt;
      return v.size() == 1 ? v[0] : v[i];
    };
    const std::uint32_t kh = pick(c.kernel_size(), 0, c.has_kernel_h(), c.kernel_h(), 0);
    const std::uint32_t kw = pick(c.kernel_size(), 1, c.has_kernel_w(), c.kernel_w(), 0);
    RUCHE_REQUIRE(kh > 0 && kw > 0) << who(l) << ": no kernel size";
    p->set_kernel_h(kh);
    p->set_kernel_w(kw);
    p->set_stride_h(pick(c.stride(), 0, c.has_stride_h(), c.stride_h(), 1));
    p->set_stride_w(pick(c.stride(), 1, c.has_stride_w(), c.stride_w(), 1));
    p->set_pad_h(pick(c.pad(), 0, c.has_pad_h(), c.pad_h(), 0));
    p->set_pad_w(pick(c.pad(), 1, c.has_pad_w(), c.pad_w(), 0));
    if (c.dilation_size() == 1) p->set_dilation(c.dilation(0));
    p->set_group(c.group());
    map_filler(c.weight_filler(), p->mutable_weight_filler(), who(l), report);
    if (c.bias_term()) map_filler(c.bias_filler(), p->mutable_bias_filler(), who(l), report);
    map_params(l, out);
    own_blobs(l, c.bias_term() ? 2 : 1);
  }

  void inner_product(const cf::LayerParameter& l) {
    const auto& c = l.inner_product_param();
    RUCHE_REQUIRE(c.axis() == 1)
        << who(l) << ": axis " << c.axis()
        << " is not mapped (ruche's InnerProduct flattens everything after axis 0, Caffe's axis 1)";
    auto* out = start(l, "InnerProduct");
    auto* p = out->mutable_inner_product_param();
    p->set_num_output(c.num_output());
    p->set_bias_term(c.bias_term());
    map_filler(c.weight_filler(), p->mutable_weight_filler(), who(l), report);
    if (c.bias_term()) map_filler(c.bias_filler(), p->mutable_bias_filler(), who(l), report);
    map_params(l, out);
    own_blobs(l, c.bias_term() ? 2 : 1, c.transpose());
    if (c.transpose())
      report->push_back(who(l) +
                        ": transpose: true: Caffe stores the weight as [K, O]; "
                        "weights.npz holds it transposed, [O, K]");
  }

  void pooling(const cf::LayerParameter& l) {
    const auto& c = l.pooling_param();
    RUCHE_REQUIRE(c.pool() != cf::PoolingParameter::STOCHASTIC)
        << who(l) << ": STOCHASTIC pooling is not mapped";
    auto* p = start(l, "Pooling")->mutable_pooling_param();
    p->set_pool(c.pool() == cf::PoolingParameter::MAX ? proto::PoolingParameter::MAX
                                                      : proto::PoolingParameter::AVE);
    if (c.global_pooling()) {
      p->set_global_pooling(true);
      return;
    }
    const std::uint32_t kh = c.has_kernel_h() ? c.kernel_h() : c.kernel_size();
    const std::uint32_t kw = c.has_kernel_w() ? c.kernel_w() : c.kernel_size();
    RUCHE_REQUIRE(kh > 0 && kw > 0) << who(l) << ": no kernel size";
    p->set_kernel_h(kh);
    p->set_kernel_w(kw);
    // Caffe's stride defaults to 1 (ruche's to the kernel): always written.
    p->set_stride_h(c.has_stride_h() ? c.stride_h() : c.stride());
    p->set_stride_w(c.has_stride_w() ? c.stride_w() : c.stride());
    p->set_pad_h(c.has_pad_h() ? c.pad_h() : c.pad());
    p->set_pad_w(c.has_pad_w() ? c.pad_w() : c.pad());
    // Caffe rounds the output size up (and drops a last window starting in the padding), as
    // PyTorch's ceil_mode; its average counts the padding inside the padded input.
    p->set_ceil_mode(c.round_mode() == cf::PoolingParameter::CEIL);
    p->set_count_include_pad(true);
  }

  // The Scale that a BatchNorm at `i` merges with: the next layer, reading the BatchNorm's top
  // alone, per channel, and either in place or the only reader of the normalised blob.
  const cf::LayerParameter* scale_after(std::size_t i) const {
    const cf::LayerParameter& bn = *layers[i];
    if (i + 1 >= layers.size() || bn.top_size() != 1) return nullptr;
    const cf::LayerParameter& s = *layers[i + 1];
    const auto& c = s.scale_param();
    if (s.type() != "Scale" || s.bottom_size() != 1 || s.bottom(0) != bn.top(0) ||
        s.top_size() != 1 || c.axis() != 1 || c.num_axes() != 1) {
      return nullptr;
    }
    if (s.top(0) == bn.top(0)) return &s;
    for (std::size_t k = i + 2; k < layers.size(); ++k) {
      const auto& b = layers[k]->bottom();
      if (std::find(b.begin(), b.end(), bn.top(0)) != b.end()) return nullptr;
      const auto& t = layers[k]->top();
      if (std::find(t.begin(), t.end(), bn.top(0)) != t.end()) break;
    }
    return &s;
  }

  // Returns how many Caffe layers it consumed (2 when a Scale merged in).
  std::size_t batch_norm(std::size_t i) {
    const cf::LayerParameter& l = *layers[i];
    const auto& c = l.batch_norm_param();
    const cf::LayerParameter* scale = scale_after(i);
    auto* out = start(l, "BatchNorm");
    auto* p = out->mutable_batch_norm_param();
    p->set_eps(c.eps());
    p->set_momentum(1.0f - c.moving_average_fraction());
    if (c.use_global_stats()) p->set_use_global_stats(true);
    report->push_back(who(l) + ": moving_average_fraction " + number(c.moving_average_fraction()) +
                      " becomes momentum " + number(1.0f - c.moving_average_fraction()) +
                      ": approximate (Caffe divides running sums by a decaying count; the two "
                      "agree once that count has converged, as in a trained model)");
    if (l.param_size() > 0)
      report->push_back(who(l) + ": its " + std::to_string(l.param_size()) +
                        " param {} blocks dropped: in Caffe they are its statistics', not "
                        "gamma's or beta's");
    if (c.use_global_stats())
      report->push_back(who(l) +
                        ": use_global_stats: training normalises with the running "
                        "statistics and never updates them");
    auto& src = m.sources[l.name()];
    if (scale == nullptr) {
      p->set_affine(false);  // Caffe's BatchNorm has no gamma/beta: a Scale layer may follow
    } else {
      const auto& sc = scale->scale_param();
      out->set_top(0, scale->top(0));
      map_params(*scale, out);
      if (!sc.bias_term()) {
        while (out->param_size() < 1) out->add_param();
        auto* beta = out->param_size() < 2 ? out->add_param() : out->mutable_param(1);
        beta->set_lr_mult(0.0f);
        beta->set_decay_mult(0.0f);
      }
      src.push_back({scale->name(), 0});
      src.push_back({scale->name(), sc.bias_term() ? 1 : -1});
      std::string line = who(l) + " and '" + scale->name() +
                         "' (Scale) become one affine BatchNorm '" + l.name() +
                         "' (gamma and beta: the Scale's blobs and param blocks)";
      if (!sc.bias_term()) line += "; no bias_term: beta fixed at 0 (lr_mult 0)";
      report->push_back(line);
      if (sc.has_filler() && !(sc.filler().type() == "constant" && sc.filler().value() == 1.0f))
        report->push_back(who(*scale) + ": filler dropped: gamma starts at 1");
    }
    src.push_back({l.name(), 0, true});
    src.push_back({l.name(), 1, true});
    return scale == nullptr ? 1 : 2;
  }

  void data(const cf::LayerParameter& l) {
    RUCHE_REQUIRE(l.top_size() >= 1 && l.top_size() <= 2)
        << who(l) << ": expected data, label tops";
    start(l, "Input");
    const bool image = l.type() == "ImageData";
    const std::string source = image ? l.image_data_param().source() : l.data_param().source();
    const std::uint32_t batch =
        image ? l.image_data_param().batch_size() : l.data_param().batch_size();
    report->push_back(who(l) +
                      ": becomes an Input layer; ruche reads the data --data gives (source '" +
                      source + "' dropped), batch_size " + std::to_string(batch) +
                      " goes to solver.prototxt and the transform to preprocess.json");
    m.data = &l;
  }

  void loss(const cf::LayerParameter& l, const std::string& type) {
    RUCHE_REQUIRE(l.top_size() <= 1)
        << who(l) << ": a second top (the probabilities) is not mapped";
    RUCHE_REQUIRE(type != "SoftmaxWithLoss" || l.softmax_param().axis() == 1)
        << who(l) << ": softmax axis " << l.softmax_param().axis() << " is not mapped (only 1)";
    const bool ignores = l.loss_param().has_ignore_label();
    RUCHE_REQUIRE(!ignores || type == "SoftmaxWithLoss")
        << who(l) << ": ignore_label is mapped for SoftmaxWithLoss only";
    auto* out = start(l, type);
    out->clear_loss_weight();
    if (ignores) out->mutable_loss_param()->set_ignore_label(l.loss_param().ignore_label());
    LossNorm n;
    n.layer = m.net.layer_size() - 1;
    n.type = type;
    n.mode = caffe_normalization(l);
    n.weight = l.loss_weight_size() > 0 ? l.loss_weight(0) : 1.0f;
    m.losses.push_back(n);
  }

  // Accuracy becomes evaluation metrics: top-1 and top-5 always, another top_k as eval_top_k.
  void accuracy(const cf::LayerParameter& l) {
    const auto& c = l.accuracy_param();
    const int k = static_cast<int>(c.top_k());
    std::string line = who(l) + ": dropped; ruche's evaluation reports top-1 and top-5 accuracy";
    if (k != 1 && k != 5) {
      const auto& asked = m.net.eval_top_k();
      if (std::find(asked.begin(), asked.end(), k) == asked.end()) m.net.add_eval_top_k(k);
      line += ", and top" + std::to_string(k) + " for its top_k (eval_top_k)";
    }
    report->push_back(line);
    if (c.has_ignore_label()) m.accuracy_ignores.push_back(c.ignore_label());
  }

  // ruche's accuracy skips the main SoftmaxWithLoss's ignore_label: an Accuracy layer's own is
  // carried when some SoftmaxWithLoss has the same.
  void check_accuracy_ignores() const {
    for (std::int32_t y : m.accuracy_ignores) {
      const bool carried = std::any_of(m.losses.begin(), m.losses.end(), [&](const LossNorm& n) {
        const auto& p = m.net.layer(n.layer).loss_param();
        return p.has_ignore_label() && p.ignore_label() == y;
      });
      if (!carried)
        report->push_back(where + ": Accuracy's ignore_label " + std::to_string(y) +
                          " dropped: ruche's accuracy skips the label its SoftmaxWithLoss ignores, "
                          "and no SoftmaxWithLoss ignores " +
                          std::to_string(y));
    }
  }

  std::size_t layer(std::size_t i) {
    const cf::LayerParameter& l = *layers[i];
    const std::string& t = l.type();
    if (t == "Input") {
      RUCHE_REQUIRE(l.top_size() >= 1 && l.top_size() <= 2) << who(l) << ": expected 1 or 2 tops";
      std::vector<std::int64_t> shape;
      if (l.input_param().shape_size() >= 1) {
        for (auto d : l.input_param().shape(0).dim()) shape.push_back(d);
      }
      input_layer(l.name(), {l.top().begin(), l.top().end()}, shape);
    } else if (t == "Data" || t == "ImageData") {
      data(l);
    } else if (t == "Convolution" || t == "Deconvolution") {
      conv(l, t);
    } else if (t == "Pooling") {
      pooling(l);
    } else if (t == "InnerProduct") {
      inner_product(l);
    } else if (t == "ReLU") {
      auto* out = start(l, "ReLU");
      if (l.relu_param().negative_slope() != 0)
        out->mutable_relu_param()->set_negative_slope(l.relu_param().negative_slope());
    } else if (t == "Sigmoid" || t == "TanH") {
      start(l, t);
    } else if (t == "Dropout") {
      start(l, "Dropout")
          ->mutable_dropout_param()
          ->set_dropout_ratio(l.dropout_param().dropout_ratio());
    } else if (t == "BatchNorm") {
      return batch_norm(i);
    } else if (t == "Scale") {
      const auto& c = l.scale_param();
      auto* p = start(l, "Scale")->mutable_scale_param();
      p->set_axis(c.axis());
      p->set_num_axes(c.num_axes());
      p->set_bias_term(c.bias_term());
      if (c.has_filler()) map_filler(c.filler(), p->mutable_filler(), who(l), report);
      if (c.has_bias_filler())
        map_filler(c.bias_filler(), p->mutable_bias_filler(), who(l), report);
      map_params(l, m.net.mutable_layer(m.net.layer_size() - 1));
      if (l.bottom_size() == 1)
        own_blobs(l, c.bias_term() ? 2 : 1);
      else if (c.bias_term())
        m.sources[l.name()].push_back({l.name(), 0});
    } else if (t == "LRN") {
      const auto& c = l.lrn_param();
      auto* p = start(l, "LRN")->mutable_lrn_param();
      p->set_local_size(c.local_size());
      p->set_alpha(c.alpha());
      p->set_beta(c.beta());
      p->set_k(c.k());
      p->set_norm_region(c.norm_region() == cf::LRNParameter::ACROSS_CHANNELS
                             ? proto::LRNParameter::ACROSS_CHANNELS
                             : proto::LRNParameter::WITHIN_CHANNEL);
    } else if (t == "Concat") {
      const auto& c = l.concat_param();
      const int axis = c.has_axis() ? c.axis() : static_cast<int>(c.concat_dim());
      start(l, "Concat")->mutable_concat_param()->set_axis(axis);
    } else if (t == "Eltwise") {
      const auto& c = l.eltwise_param();
      auto* p = start(l, "Eltwise")->mutable_eltwise_param();
      p->set_operation(c.operation() == cf::EltwiseParameter::PROD  ? proto::EltwiseParameter::PROD
                       : c.operation() == cf::EltwiseParameter::MAX ? proto::EltwiseParameter::MAX
                                                                    : proto::EltwiseParameter::SUM);
      RUCHE_REQUIRE(c.coeff_size() == 0 || (c.operation() == cf::EltwiseParameter::SUM &&
                                            c.coeff_size() == l.bottom_size()))
          << who(l) << ": coeff needs operation SUM and one value per bottom";
      for (float k : c.coeff()) p->add_coeff(k);
    } else if (t == "Flatten") {
      RUCHE_REQUIRE(l.flatten_param().end_axis() == -1)
          << who(l) << ": end_axis " << l.flatten_param().end_axis() << " is not mapped (only -1)";
      start(l, "Flatten")->mutable_flatten_param()->set_axis(l.flatten_param().axis());
    } else if (t == "Power") {
      const auto& c = l.power_param();
      auto* p = start(l, "Power")->mutable_power_param();
      p->set_power(c.power());
      p->set_scale(c.scale());
      p->set_shift(c.shift());
    } else if (t == "Softmax") {
      start(l, "Softmax")->mutable_softmax_param()->set_axis(l.softmax_param().axis());
    } else if (t == "SoftmaxWithLoss" || t == "EuclideanLoss" || t == "SigmoidCrossEntropyLoss") {
      loss(l, t);
    } else if (t == "Accuracy") {
      accuracy(l);
    } else if (t == "Silence") {
      report->push_back(who(l) + ": dropped (ruche needs no sink for unused blobs)");
    } else {
      RUCHE_FAIL() << who(l) << ": layer type '" << t << "' is not mapped by ruche import caffe";
    }
    return 1;
  }
};

// The mapped net from Caffe's (already upgraded) net: the training state's layers, in order.
Mapping map_net(const cf::NetParameter& in, const std::string& where,
                std::vector<std::string>* report) {
  Mapper mp{where, report, {}, {}};
  mp.m.net.set_name(in.name());
  // Net-level inputs (deploy files): input + input_shape or input_dim.
  RUCHE_REQUIRE(in.input_size() <= 1) << where << ": more than one net input is not mapped yet";
  if (in.input_size() == 1) {
    std::vector<std::int64_t> shape;
    if (in.input_shape_size() > 0) {
      for (auto d : in.input_shape(0).dim()) shape.push_back(d);
    } else {
      for (auto d : in.input_dim()) shape.push_back(d);
    }
    mp.input_layer(in.input(0), {in.input(0)}, shape);
  }
  const cf::NetState state = caffe_train_state(in);
  for (const auto& l : in.layer()) {
    if (caffe_layer_in_state(l, state, where)) {
      mp.layers.push_back(&l);
    } else if (l.type() == "Accuracy") {  // Caffe's TEST net is ruche's validation: its metrics
      mp.accuracy(l);
    } else {
      report->push_back(where + ": layer '" + l.name() + "' (" + l.type() +
                        "): not in the training net (include/exclude), dropped; ruche validates "
                        "with the training net");
    }
  }
  for (std::size_t i = 0; i < mp.layers.size();) i += mp.layer(i);
  mp.check_accuracy_ignores();
  return std::move(mp.m);
}

std::vector<std::int64_t> blob_dims(const cf::BlobProto& b) {
  std::vector<std::int64_t> d;
  if (b.has_shape()) {
    for (auto x : b.shape().dim()) d.push_back(x);
  } else if (b.has_num() || b.has_channels() || b.has_height() || b.has_width()) {
    d = {b.num(), b.channels(), b.height(), b.width()};
  }
  return d;
}

std::vector<std::int64_t> squeezed(const std::vector<std::int64_t>& d) {
  std::vector<std::int64_t> out;
  for (auto x : d) {
    if (x != 1) out.push_back(x);
  }
  return out;
}

std::vector<float> blob_values(const cf::BlobProto& b) {
  if (b.data_size() > 0) return {b.data().begin(), b.data().end()};
  std::vector<float> v;
  for (double x : b.double_data()) v.push_back(static_cast<float>(x));
  return v;
}

std::string resolve(const std::string& path, const std::string& beside) {
  if (fs::exists(path)) return path;
  const fs::path p = fs::path(beside).parent_path() / path;
  return fs::exists(p) ? p.string() : path;
}

// The net ruche builds from the mapping, on one sample of `dims` (batch `batch`).
std::unique_ptr<Net> build_net(const proto::NetParameter& net,
                               const std::vector<std::int64_t>& dims, int batch) {
  NetOptions no;
  no.batch_size = batch;
  no.sample_shape = Shape(dims.begin(), dims.end());
  return Net::build(net, no);
}

// Caffe's divisors as loss_weight on ruche's mean losses (SoftmaxWithLoss: the mean over the
// batch; EuclideanLoss, SigmoidCrossEntropyLoss: over every element): D is the elements of one
// sample's prediction, N the batch.
void apply_loss_normalization(Mapping& m, const std::vector<std::int64_t>& dims, int batch,
                              const std::string& where, const std::string& missing,
                              std::vector<std::string>* report) {
  if (m.losses.empty()) return;
  std::map<std::string, std::int64_t> per_sample;  // prediction blob -> elements per sample
  const auto needs_d = [](const LossNorm& n) {
    return n.type == "EuclideanLoss" ||
           (n.type == "SigmoidCrossEntropyLoss" && n.mode != cf::LossParameter::FULL &&
            n.mode != cf::LossParameter::VALID);
  };
  if (std::any_of(m.losses.begin(), m.losses.end(), needs_d)) {
    RUCHE_REQUIRE(!dims.empty()) << where << ": the input shape is needed to carry "
                                 << m.net.layer(m.losses[0].layer).name() << "'s normalization and "
                                 << missing << "; give --input C,H,W";
    proto::NetParameter heads = m.net;  // the net without its losses: the predictions' shapes
    heads.clear_layer();
    for (int i = 0; i < m.net.layer_size(); ++i) {
      const std::string& t = m.net.layer(i).type();
      if (t.size() < 4 || t.compare(t.size() - 4, 4, "Loss") != 0)
        *heads.add_layer() = m.net.layer(i);
    }
    const auto net = build_net(heads, dims, 1);
    for (const auto& n : m.losses) {
      const std::string& pred = m.net.layer(n.layer).bottom(0);
      per_sample[pred] = net->blob(pred).numel();
    }
  }
  for (const auto& n : m.losses) {
    auto* l = m.net.mutable_layer(n.layer);
    const std::string who = where + ": layer '" + l->name() + "' (" + n.type + ")";
    const double d =
        n.type == "SoftmaxWithLoss" ? 1.0 : static_cast<double>(per_sample[l->bottom(0)]);
    double factor = 1.0;
    std::string how;
    if (n.type == "EuclideanLoss") {
      factor = d / 2.0;
      how = "Caffe's sum / (2N)";
    } else if (n.mode == cf::LossParameter::NONE) {
      RUCHE_REQUIRE(batch > 0) << who << ": normalization NONE (a sum over the batch) needs the "
                               << "batch size, which no Data layer gives";
      factor = d * batch;
      how = "Caffe's sum over the batch of " + std::to_string(batch) +
            " (exact at that batch size only)";
    } else if (n.mode == cf::LossParameter::BATCH_SIZE) {
      factor = d;
      how = "Caffe's sum / N";
    } else {
      how =
          n.mode == cf::LossParameter::FULL ? "Caffe's sum / (N x D)" : "Caffe's sum / valid count";
    }
    const float w = static_cast<float>(n.weight * factor);
    if (w != 1.0f) l->add_loss_weight(w);
    if (factor != 1.0 || n.weight != 1.0f) {
      // NOLINTNEXTLINE(performance-inefficient-string-concatenation): a report line per loss layer
      report->push_back(who + ": " + how + " is loss_weight " + number(w) + " on ruche's mean");
    }
    if (l->loss_param().has_ignore_label() && n.mode != cf::LossParameter::VALID)
      report->push_back(who +
                        ": with ignore_label, Caffe's divisor counts the ignored entries "
                        "and ruche's mean does not: approximate");
  }
}

// The training Data layer's sample shape, where its settings determine one: [C, crop, crop] or
// ImageData's [C, new_height, new_width], C from the mean, the colour flags or the first
// convolution's weights. Empty, with what is missing in `missing`, otherwise.
std::vector<std::int64_t> data_layer_dims(const cf::LayerParameter& l, int mean_channels,
                                          const cf::NetParameter* model, const Mapping& m,
                                          std::string* missing) {
  const auto& tp = l.transform_param();
  const bool image = l.type() == "ImageData";
  std::int64_t c = mean_channels;
  if (c == 0 && tp.mean_value_size() > 1) c = tp.mean_value_size();
  if (c == 0 && tp.force_gray()) c = 1;
  if (c == 0 && tp.force_color()) c = 3;
  if (c == 0 && image) c = l.image_data_param().is_color() ? 3 : 1;
  if (c == 0 && model != nullptr) {  // the first convolution's weight: [O, C, kh, kw]
    for (const auto& ml : m.net.layer()) {
      if (ml.type() != "Convolution") continue;
      for (const auto& cl : model->layer()) {
        if (cl.name() == ml.name() && cl.blobs_size() > 0) {
          const auto d = blob_dims(cl.blobs(0));
          if (d.size() == 4) c = d[1] * ml.convolution_param().group();
        }
      }
      break;
    }
  }
  std::uint32_t crop = tp.crop_size();
  if (l.type() == "Data" && l.data_param().has_crop_size()) crop = l.data_param().crop_size();
  std::int64_t h = crop, w = crop;
  if (crop == 0 && image) {
    h = l.image_data_param().new_height();
    w = l.image_data_param().new_width();
  }
  if (c > 0 && h > 0 && w > 0) return {c, h, w};
  *missing = "the Data layer '" + l.name() + "' gives no " +
             (c == 0 ? std::string("channel count") : std::string("height and width")) +
             " (Caffe reads them from its database; no crop_size)";
  return {};
}

// The Data layer's transform_param (and data_param's older fields) as the preprocessing record,
// OUT/preprocess.json; a mean_file becomes OUT/mean_image.npy. Returns the mean image's channel
// count (0 without one).
int write_preprocess_record(const cf::LayerParameter& data, const CaffeImportOptions& o,
                            const fs::path& out, CaffeImportResult* r) {
  int mean_channels = 0;
  const auto& tp = data.transform_param();
  proto::Preprocess p;
  p.set_source("caffe");
  p.set_input("pixels");
  float scale = tp.scale();
  std::string mean_file = tp.mean_file();
  std::uint32_t crop = tp.crop_size();
  if (data.type() == "Data" && data.has_data_param()) {  // the older fields
    const auto& dp = data.data_param();
    if (dp.has_scale()) scale = dp.scale();
    if (dp.has_mean_file()) mean_file = dp.mean_file();
    if (dp.has_crop_size()) crop = dp.crop_size();
  }
  p.set_scale(scale);
  int channels = o.input.empty() ? 0 : o.input[0];
  if (tp.mean_value_size() > 1) channels = tp.mean_value_size();
  for (float v : tp.mean_value()) p.add_mean(v * scale);
  if (!mean_file.empty()) {
    const std::string path = resolve(mean_file, o.net);
    cf::BlobProto mean;
    RUCHE_REQUIRE(mean.ParseFromString(read_file(path)))
        << path << ": not a Caffe BlobProto (mean_file of '" << data.name() << "')";
    auto d = blob_dims(mean);
    while (d.size() > 3 && d[0] == 1) d.erase(d.begin());
    RUCHE_REQUIRE(d.size() == 3) << path << ": mean_file of shape " << dims_text(d)
                                 << ", expected [1, C, H, W]";
    auto values = blob_values(mean);
    RUCHE_REQUIRE(static_cast<std::int64_t>(values.size()) == d[0] * d[1] * d[2])
        << path << ": mean_file holds " << values.size() << " values for " << dims_text(d);
    for (auto& v : values) v *= scale;
    save_npy((out / "mean_image.npy").string(),
             Tensor::from_vector(values, Shape(d.begin(), d.end())));
    p.set_mean_image("mean_image.npy");
    channels = mean_channels = static_cast<int>(d[0]);
    r->written.push_back((out / "mean_image.npy").string());
    if (crop > 0 && (d[1] != crop || d[2] != crop))
      r->report.push_back(o.net + ": mean_file is " + std::to_string(d[1]) + "x" +
                          std::to_string(d[2]) + ", crops " + std::to_string(crop) +
                          ": Caffe subtracts it at the crop's offset; not yet carried");
  }
  if (channels == 3)
    p.set_channel_order("BGR");
  else if (channels == 1)
    p.set_channel_order("gray");
  else
    r->report.push_back(o.net + ": the channel count is not known; channel_order left open");
  if (crop > 0 && channels > 0) {
    p.add_sample_shape(channels);
    p.add_sample_shape(static_cast<int>(crop));
    p.add_sample_shape(static_cast<int>(crop));
  }
  if (tp.mirror())
    r->report.push_back(o.net + ": mirror: ruche train's augmentation flips (--augment)");
  write_file_durably((out / kPreprocessFile).string(), preprocess_json(p));
  r->written.push_back((out / kPreprocessFile).string());
  return mean_channels;
}

// The sample shape: the net's Input, --input, or what the Data layer determines (else empty, and
// *missing says why).
std::vector<std::int64_t> sample_dims(const Mapping& m, const CaffeImportOptions& o,
                                      int mean_channels, const cf::NetParameter* model,
                                      std::string* missing, std::vector<std::string>* report) {
  std::vector<std::int64_t> input_dims;
  for (const auto& l : m.net.layer()) {
    if (l.type() == "Input" && l.input_param().dim_size() > 0) {
      input_dims.assign(l.input_param().dim().begin(), l.input_param().dim().end());
      break;
    }
  }
  if (input_dims.empty() && !o.input.empty()) input_dims.assign(o.input.begin(), o.input.end());
  *missing = "the net has no Input shape";
  if (input_dims.empty() && m.data != nullptr) {
    input_dims = data_layer_dims(*m.data, mean_channels, model, m, missing);
    if (!input_dims.empty())
      report->push_back(o.net + ": input shape " + dims_text(input_dims) +
                        " from the Data layer '" + m.data->name() + "'");
  }
  return input_dims;
}

// The batch size a Data or ImageData layer reads (0 when it gives none).
std::uint32_t data_batch_size(const cf::LayerParameter& data) {
  return data.type() == "Data" ? data.data_param().batch_size()
                               : data.image_data_param().batch_size();
}

using CaffeLayers = std::map<std::string, const cf::LayerParameter*>;  // by name

// Whether the .caffemodel has no blobs for this Caffe layer (absent, or present without blobs).
bool blobless(const CaffeLayers& by_name, const std::string& layer) {
  const auto it = by_name.find(layer);
  return it == by_name.end() || it->second->blobs_size() == 0;
}

// One mapped layer's tensors filled from the Caffe layers' blobs its sources name (BatchNorm's
// statistics divided by the scale factor, a transposed InnerProduct turned to [O, K]); records in
// *expected how many blobs each Caffe layer must hold.
void load_layer_tensors(const std::vector<std::pair<std::string, Tensor>>& entries,
                        const std::vector<BlobSource>& sources, const CaffeLayers& by_name,
                        const CaffeImportOptions& o, std::map<std::string, int>* expected,
                        CaffeImportResult* r) {
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& [name, t] = entries[i];
    const BlobSource& s = sources[i];
    float* dst = t.data<float>();
    if (s.blob < 0) {
      std::fill(dst, dst + t.numel(), 0.0f);
      continue;
    }
    RUCHE_REQUIRE(!blobless(by_name, s.layer))
        << o.weights << ": no blobs for layer '" << s.layer << "', which " << name << " reads";
    const cf::LayerParameter& cl = *by_name.at(s.layer);
    const int wanted = s.bn_factor ? 3 : s.blob + 1;
    (*expected)[s.layer] = std::max((*expected)[s.layer], wanted);
    RUCHE_REQUIRE(cl.blobs_size() >= wanted)
        << o.weights << ": layer '" << s.layer << "' (" << cl.type() << ") has " << cl.blobs_size()
        << " blobs, ruche expects " << wanted;
    const auto& b = cl.blobs(s.blob);
    const auto values = blob_values(b);
    const std::vector<std::int64_t> want(t.shape().begin(), t.shape().end());
    auto have = blob_dims(b);
    if (s.transposed && squeezed(have).size() == 2) std::reverse(have.begin(), have.end());
    RUCHE_REQUIRE(static_cast<std::int64_t>(values.size()) == t.numel() &&
                  (have.empty() || squeezed(have) == squeezed(want)))
        << o.weights << ": layer '" << s.layer << "' blob " << s.blob << " has shape "
        << dims_text(blob_dims(b)) << " (" << values.size() << " values), ruche's " << name
        << " is " << dims_text(want);
    float mul = 1.0f;
    if (s.bn_factor) {
      const auto f = blob_values(cl.blobs(2));
      RUCHE_REQUIRE(f.size() == 1) << o.weights << ": layer '" << s.layer
                                   << "': the BatchNorm scale factor blob is not one value";
      mul = f[0] == 0.0f ? 0.0f : 1.0f / f[0];
    }
    if (s.transposed) {  // [K, O] -> [O, K]
      const std::int64_t rows = want[0], cols = t.numel() / want[0];
      for (std::int64_t o_ = 0; o_ < rows; ++o_) {
        for (std::int64_t k = 0; k < cols; ++k) dst[o_ * cols + k] = values[k * rows + o_];
      }
    } else {
      for (std::size_t k = 0; k < values.size(); ++k) dst[k] = values[k] * mul;
    }
    ++r->tensors;
  }
}

// The .caffemodel's blobs onto the imported net's state_dict names, OUT/weights.npz; Caffe layers
// with blobs the net does not read are reported as dropped.
void import_weights(const cf::NetParameter& model, const Mapping& m,
                    const std::vector<std::int64_t>& input_dims, const std::string& missing,
                    const CaffeImportOptions& o, const fs::path& out, CaffeImportResult* r) {
  RUCHE_REQUIRE(!input_dims.empty())
      << o.net << ": the input shape is not determinable to import weights: " << missing
      << "; give --input C,H,W";
  auto net = build_net(r->net, input_dims, 1);
  CaffeLayers by_name;
  for (const auto& l : model.layer()) by_name[l.name()] = &l;
  std::map<std::string, int> expected;  // Caffe layer -> the blobs the mapping reads
  const auto state = net->state_dict();
  for (const auto& l : r->net.layer()) {
    std::vector<std::pair<std::string, Tensor>> entries;
    const std::string prefix = l.name() + ".";
    for (const auto& [name, t] : state) {
      if (name.rfind(prefix, 0) == 0 && name != prefix + "num_batches_tracked")
        entries.emplace_back(name, t);
    }
    if (entries.empty()) continue;
    const auto found = m.sources.find(l.name());
    const std::vector<BlobSource> none;
    const auto& sources = found != m.sources.end() ? found->second : none;
    RUCHE_CHECK(sources.size() == entries.size())
        << "layer '" << l.name() << "': " << sources.size() << " blob sources for "
        << entries.size() << " tensors";
    if (std::all_of(sources.begin(), sources.end(),
                    [&](const BlobSource& s) { return blobless(by_name, s.layer); })) {
      r->report.push_back(o.weights + ": no blobs for layer '" + l.name() +
                          "': ruche's initialisation kept");
      continue;
    }
    load_layer_tensors(entries, sources, by_name, o, &expected, r);
  }
  for (const auto& [name, e] : expected) {
    const int have = by_name.at(name)->blobs_size();
    RUCHE_REQUIRE(have == e) << o.weights << ": layer '" << name << "' ("
                             << by_name.at(name)->type() << ") has " << have
                             << " blobs, ruche expects " << e;
    by_name.erase(name);
  }
  for (const auto& [name, l] : by_name) {
    if (l->blobs_size() > 0)
      r->report.push_back(o.weights + ": blobs of layer '" + name + "' not in the net, dropped");
  }
  save_weights(*net, (out / "weights.npz").string());
  r->written.push_back((out / "weights.npz").string());
}

}  // namespace

proto::NetParameter caffe_net_from_text(const std::string& text, const std::string& where,
                                        std::vector<std::string>* report) {
  return map_net(read_caffe_net_text(text, where), where, report).net;
}

CaffeImportResult import_caffe(const CaffeImportOptions& o) {
  CaffeImportResult r;
  RUCHE_REQUIRE(!o.out.empty()) << "ruche import caffe: give -o DIR";
  const cf::NetParameter caffe_net = read_caffe_net_text(read_text_file(o.net), o.net);
  Mapping m = map_net(caffe_net, o.net, &r.report);
  const cf::LayerParameter* data = m.data;
  std::optional<cf::NetParameter> model;
  if (!o.weights.empty()) model = read_caffe_net_binary(read_file(o.weights), o.weights);

  make_directories(o.out);
  const fs::path out(o.out);
  const int mean_channels = data != nullptr ? write_preprocess_record(*data, o, out, &r) : 0;
  std::string missing;
  const std::vector<std::int64_t> input_dims =
      sample_dims(m, o, mean_channels, model ? &*model : nullptr, &missing, &r.report);
  const int batch = data != nullptr ? static_cast<int>(data_batch_size(*data)) : m.batch;
  apply_loss_normalization(m, input_dims, batch, o.net, missing, &r.report);
  r.net = m.net;

  if (!o.solver.empty()) {
    auto solver = caffe_solver_from_text(read_text_file(o.solver), o.solver, &r.report);
    if (data != nullptr && data_batch_size(*data) > 0)
      solver.set_batch_size(static_cast<int>(data_batch_size(*data)));
    write_file_durably((out / "solver.prototxt").string(), to_prototxt(solver));
    r.written.push_back((out / "solver.prototxt").string());
  }
  if (model) import_weights(*model, m, input_dims, missing, o, out, &r);

  write_file_durably((out / "net.prototxt").string(), to_prototxt(r.net));
  r.written.insert(r.written.begin(), (out / "net.prototxt").string());
  std::string report;
  for (const auto& line : r.report) report += line + "\n";
  write_file_durably((out / "import-report.txt").string(), report);
  r.written.push_back((out / "import-report.txt").string());
  return r;
}

}  // namespace ruche
