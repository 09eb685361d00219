// `ruche import caffe` (engine/interop/caffe_import.h): Caffe's meaning carried onto ruche's
// schema, layer by layer; every change of meaning and every dropped setting is a report line.
#include "engine/interop/caffe_import.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <sstream>

#include "engine/checkpoint/file_io.h"
#include "engine/data/preprocess.h"
#include "engine/error.h"
#include "engine/graph/net.h"
#include "engine/interop/caffe_import.pb.h"
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

// V1 nets (`layers { type: CONVOLUTION }`) are refused before parsing, in one line.
void refuse_v1_text(const std::string& text, const std::string& where) {
  static const std::regex v1(R"((^|\n)[ \t]*layers[ \t]*\{)");
  RUCHE_REQUIRE(!std::regex_search(text, v1))
      << where << ": a V1 Caffe net ('layers' blocks); ruche import caffe reads V2 nets ('layer'): "
      << "upgrade it with Caffe's upgrade_net_proto_text";
}

bool in_phase(const cf::LayerParameter& l, cf::Phase phase) {
  if (l.has_phase()) return l.phase() == phase;
  if (l.include_size() > 0) {
    for (const auto& r : l.include()) {
      if (!r.has_phase() || r.phase() == phase) return true;
    }
    return false;
  }
  for (const auto& r : l.exclude()) {
    if (r.has_phase() && r.phase() == phase) return false;
  }
  return true;
}

std::string dims_text(const std::vector<std::int64_t>& d) {
  std::ostringstream s;
  s << "[";
  for (std::size_t i = 0; i < d.size(); ++i) s << (i ? ", " : "") << d[i];
  s << "]";
  return s.str();
}

// Caffe's filler onto ruche's, where the meaning is the same; else ruche's default and a line.
void map_filler(const cf::FillerParameter& in, proto::FillerParameter* out, const std::string& who,
                std::vector<std::string>* report) {
  const std::string& t = in.type();
  if (t == "constant") {
    out->set_type("constant");
    out->set_value(in.value());
  } else if (t == "gaussian" && in.sparse() < 0) {
    out->set_type("normal");
    out->set_mean(in.mean());
    out->set_std(in.std());
  } else if (t == "uniform") {
    out->set_type("uniform");
    out->set_min(in.min());
    out->set_max(in.max());
  } else {
    out->Clear();
    report->push_back(who + ": filler '" + t + "' not yet mapped; ruche's default initialisation");
  }
}

void map_params(const cf::LayerParameter& l, proto::LayerParameter* out) {
  for (const auto& p : l.param()) {
    auto* q = out->add_param();
    q->set_lr_mult(p.lr_mult());
    q->set_decay_mult(p.decay_mult());
  }
}

struct Mapper {
  std::string where;
  std::vector<std::string>* report;
  proto::NetParameter net;
  const cf::LayerParameter* data_layer = nullptr;  // the training data layer (transform_param)
  int input_channels = 0;

  std::string who(const cf::LayerParameter& l) const {
    return where + ": layer '" + l.name() + "' (" + l.type() + ")";
  }

  proto::LayerParameter* start(const cf::LayerParameter& l, const std::string& type) {
    auto* out = net.add_layer();
    out->set_name(l.name());
    out->set_type(type);
    for (const auto& b : l.bottom()) out->add_bottom(b);
    for (const auto& t : l.top()) out->add_top(t);
    for (float w : l.loss_weight()) out->add_loss_weight(w);
    return out;
  }

  void input_layer(const std::string& name, const std::string& top,
                   const std::vector<std::int64_t>& shape) {
    auto* out = net.add_layer();
    out->set_name(name);
    out->set_type("Input");
    out->add_top(top);
    auto* ip = out->mutable_input_param();
    for (std::size_t i = 1; i < shape.size(); ++i) ip->add_dim(shape[i]);
    if (shape.size() >= 2) input_channels = static_cast<int>(shape[1]);
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
    const auto pick = [](const google::protobuf::RepeatedField<std::uint32_t>& v,
                         int i, bool has_hw, std::uint32_t hw, std::uint32_t dflt) {
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
    if (c.has_weight_filler()) map_filler(c.weight_filler(), p->mutable_weight_filler(), who(l), report);
    else { p->mutable_weight_filler()->set_type("constant"); p->mutable_weight_filler()->set_value(0); }
    if (c.bias_term()) {
      if (c.has_bias_filler()) map_filler(c.bias_filler(), p->mutable_bias_filler(), who(l), report);
      else { p->mutable_bias_filler()->set_type("constant"); p->mutable_bias_filler()->set_value(0); }
    }
    map_params(l, out);
  }

  void pooling(const cf::LayerParameter& l) {
    const auto& c = l.pooling_param();
    RUCHE_REQUIRE(c.pool() != cf::PoolingParameter::STOCHASTIC)
        << who(l) << ": STOCHASTIC pooling is not mapped";
    auto* out = start(l, "Pooling");
    auto* p = out->mutable_pooling_param();
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

  void layer(const cf::LayerParameter& l) {
    const std::string& t = l.type();
    if (t == "Input") {
      RUCHE_REQUIRE(l.top_size() >= 1) << who(l) << ": no top";
      RUCHE_REQUIRE(l.top_size() <= 2) << who(l) << ": more than data and label tops is not mapped yet";
      std::vector<std::int64_t> shape;
      if (l.input_param().shape_size() >= 1) {
        for (auto d : l.input_param().shape(0).dim()) shape.push_back(d);
      }
      input_layer(l.name(), l.top(0), shape);
      if (l.top_size() == 2) net.mutable_layer(net.layer_size() - 1)->add_top(l.top(1));
    } else if (t == "Data" || t == "ImageData") {
      RUCHE_REQUIRE(l.top_size() >= 1 && l.top_size() <= 2) << who(l) << ": expected data, label tops";
      auto* out = start(l, "Input");
      const std::uint32_t crop = l.transform_param().crop_size();
      if (crop > 0) {
        report->push_back(who(l) + ": becomes an Input layer; ruche reads the data given by --data, "
                          "with preprocess.json's transform (crop " + std::to_string(crop) + ")");
      } else {
        report->push_back(who(l) + ": becomes an Input layer; ruche reads the data given by --data "
                          "(source '" + (t == "Data" ? l.data_param().source() : l.image_data_param().source()) + "' dropped)");
      }
      (void)out;
      data_layer = &l;
    } else if (t == "Convolution" || t == "Deconvolution") {
      conv(l, t);
    } else if (t == "Pooling") {
      pooling(l);
    } else if (t == "InnerProduct") {
      const auto& c = l.inner_product_param();
      RUCHE_REQUIRE(c.axis() == 1) << who(l) << ": axis " << c.axis() << " is not mapped (only 1)";
      RUCHE_REQUIRE(!c.transpose()) << who(l) << ": transpose: true is not mapped yet";
      auto* out = start(l, "InnerProduct");
      auto* p = out->mutable_inner_product_param();
      p->set_num_output(c.num_output());
      p->set_bias_term(c.bias_term());
      if (c.has_weight_filler()) map_filler(c.weight_filler(), p->mutable_weight_filler(), who(l), report);
      else { p->mutable_weight_filler()->set_type("constant"); p->mutable_weight_filler()->set_value(0); }
      if (c.bias_term()) {
        if (c.has_bias_filler()) map_filler(c.bias_filler(), p->mutable_bias_filler(), who(l), report);
        else { p->mutable_bias_filler()->set_type("constant"); p->mutable_bias_filler()->set_value(0); }
      }
      map_params(l, out);
    } else if (t == "ReLU") {
      auto* out = start(l, "ReLU");
      if (l.relu_param().negative_slope() != 0)
        out->mutable_relu_param()->set_negative_slope(l.relu_param().negative_slope());
    } else if (t == "Sigmoid" || t == "TanH") {
      start(l, t);
    } else if (t == "Dropout") {
      start(l, "Dropout")->mutable_dropout_param()->set_dropout_ratio(l.dropout_param().dropout_ratio());
    } else if (t == "BatchNorm") {
      const auto& c = l.batch_norm_param();
      auto* out = start(l, "BatchNorm");
      auto* p = out->mutable_batch_norm_param();
      p->set_eps(c.eps());
      p->set_affine(false);  // Caffe's BatchNorm has no gamma/beta: a Scale layer follows
      p->set_momentum(1.0f - c.moving_average_fraction());
      report->push_back(who(l) + ": moving_average_fraction " + std::to_string(c.moving_average_fraction()) +
                        " becomes momentum " + std::to_string(1.0f - c.moving_average_fraction()) +
                        " (PyTorch's running average; Caffe's normalised sum is approximate)");
      if (l.param_size() > 0)
        report->push_back(who(l) + ": param {} blocks dropped (they apply to Caffe's statistics)");
      if (c.has_use_global_stats())
        report->push_back(who(l) + ": use_global_stats dropped (ruche uses batch statistics in "
                          "training and running ones in evaluation)");
    } else if (t == "Scale") {
      const auto& c = l.scale_param();
      auto* out = start(l, "Scale");
      auto* p = out->mutable_scale_param();
      p->set_axis(c.axis());
      p->set_num_axes(c.num_axes());
      p->set_bias_term(c.bias_term());
      if (c.has_filler()) map_filler(c.filler(), p->mutable_filler(), who(l), report);
      if (c.has_bias_filler()) map_filler(c.bias_filler(), p->mutable_bias_filler(), who(l), report);
      map_params(l, out);
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
      RUCHE_REQUIRE(c.operation() == cf::EltwiseParameter::SUM)
          << who(l) << ": only operation SUM is mapped";
      for (float k : c.coeff()) RUCHE_REQUIRE(k == 1.0f) << who(l) << ": coeff other than 1 is not mapped";
      start(l, "Eltwise");
    } else if (t == "Softmax") {
      start(l, "Softmax")->mutable_softmax_param()->set_axis(l.softmax_param().axis());
    } else if (t == "SoftmaxWithLoss") {
      const auto& c = l.loss_param();
      RUCHE_REQUIRE(!c.has_ignore_label()) << who(l) << ": ignore_label is not mapped yet";
      const bool valid = c.has_normalize() ? c.normalize()
                                           : (c.normalization() == cf::LossParameter::VALID ||
                                              c.normalization() == cf::LossParameter::FULL ||
                                              c.normalization() == cf::LossParameter::BATCH_SIZE);
      RUCHE_REQUIRE(valid) << who(l) << ": normalization NONE (a sum) is not mapped yet";
      RUCHE_REQUIRE(l.softmax_param().axis() == 1) << who(l) << ": softmax axis other than 1 is not mapped";
      start(l, "SoftmaxWithLoss");
    } else if (t == "Accuracy") {
      report->push_back(who(l) + ": dropped; ruche eval reports top-1 and top-k accuracy");
    } else {
      RUCHE_REQUIRE(false) << who(l) << ": layer type '" << t
                           << "' is not mapped by ruche import caffe";
    }
  }
};

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
  for (auto x : d) if (x != 1) out.push_back(x);
  return out;
}

std::vector<float> blob_values(const cf::BlobProto& b) {
  if (b.data_size() > 0) return {b.data().begin(), b.data().end()};
  std::vector<float> v;
  for (double x : b.double_data()) v.push_back(static_cast<float>(x));
  return v;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string resolve(const std::string& path, const std::string& beside) {
  if (fs::exists(path)) return path;
  const fs::path p = fs::path(beside).parent_path() / path;
  return fs::exists(p) ? p.string() : path;
}

}  // namespace

proto::NetParameter caffe_net_from_text(const std::string& text, const std::string& where,
                                        std::vector<std::string>* report) {
  refuse_v1_text(text, where);
  cf::NetParameter in;
  parse_prototxt(text, where, in);
  RUCHE_REQUIRE(in.layers_size() == 0) << where << ": a V1 Caffe net ('layers'); ruche import caffe "
                                       << "reads V2 nets ('layer')";
  Mapper m{where, report, {}, nullptr, 0};
  m.net.set_name(in.name());
  // Net-level inputs (deploy files): input + input_shape or input_dim.
  for (int i = 0; i < in.input_size(); ++i) {
    std::vector<std::int64_t> shape;
    if (i < in.input_shape_size()) {
      for (auto d : in.input_shape(i).dim()) shape.push_back(d);
    } else if (in.input_dim_size() >= 4 * (i + 1)) {
      for (int k = 0; k < 4; ++k) shape.push_back(in.input_dim(4 * i + k));
    }
    RUCHE_REQUIRE(i == 0) << where << ": more than one net input is not mapped yet";
    m.input_layer(in.input(i), in.input(i), shape);
  }
  for (const auto& l : in.layer()) {
    if (!in_phase(l, cf::TRAIN)) {
      report->push_back(where + ": layer '" + l.name() + "' (" + l.type() +
                        "): TEST phase only, dropped (ruche validates with the training net)");
      continue;
    }
    m.layer(l);
  }
  (void)m.data_layer;
  return m.net;
}

proto::SolverParameter caffe_solver_from_text(const std::string& text, const std::string& where,
                                              std::vector<std::string>* report) {
  cf::SolverParameter in;
  parse_prototxt(text, where, in);
  proto::SolverParameter s;
  std::string type = lower(in.type());
  if (!in.has_type() && in.has_solver_type()) {
    const char* names[] = {"sgd", "nesterov", "adagrad", "rmsprop", "adadelta", "adam"};
    type = names[static_cast<int>(in.solver_type())];
  }
  RUCHE_REQUIRE(type == "sgd" || type == "nesterov" || type == "adam" || type == "rmsprop")
      << where << ": solver type '" << in.type() << "' is not mapped (SGD, Nesterov, Adam, RMSProp)";
  s.set_type(type == "nesterov" ? "sgd" : type);
  if (type == "nesterov") {
    s.set_nesterov(true);
    report->push_back(where + ": Nesterov: PyTorch's formulation (Caffe's differs after an lr change)");
  }
  s.set_base_lr(in.base_lr());
  s.set_momentum(in.momentum());  // Caffe's default is 0
  if (type == "adam") {
    s.set_beta1(in.has_momentum() ? in.momentum() : 0.9f);
    s.set_beta2(in.momentum2());
    s.set_epsilon(in.delta());
  } else if (type == "rmsprop") {
    s.set_rms_alpha(in.rms_decay());
    s.set_epsilon(in.delta());
  } else if (in.momentum() != 0) {
    report->push_back(where + ": momentum: PyTorch's update (v = m v + g, w -= lr v); Caffe's "
                      "(v = m v + lr g) differs after an lr change");
  }
  if (lower(in.regularization_type()) == "l1") s.set_l1_decay(in.weight_decay());
  else s.set_weight_decay(in.weight_decay());
  const std::string policy = in.has_lr_policy() ? lower(in.lr_policy()) : "fixed";
  RUCHE_REQUIRE(policy == "fixed" || policy == "step" || policy == "multistep" ||
                policy == "exp" || policy == "inv" || policy == "poly")
      << where << ": lr_policy '" << in.lr_policy()
      << "' is not mapped yet (fixed, step, multistep, exp, inv, poly)";
  s.set_lr_policy(policy);
  if (in.has_gamma()) s.set_gamma(in.gamma());
  if (in.has_stepsize()) s.set_stepsize(in.stepsize());
  for (int v : in.stepvalue()) s.add_stepvalue(v);
  if (policy == "poly" || policy == "inv") s.set_power(in.has_power() ? in.power() : 1.0f);
  if (in.has_max_iter()) s.set_max_iter(in.max_iter());
  s.set_iter_size(in.iter_size());
  if (in.has_display() && in.display() > 0) s.set_display(in.display());
  if (in.random_seed() >= 0) s.set_random_seed(static_cast<std::uint64_t>(in.random_seed()));
  if (in.clip_gradients() > 0) s.set_clip_grad_norm(in.clip_gradients());
  const auto dropped = [&](bool has, const std::string& what) {
    if (has) report->push_back(where + ": " + what + " dropped");
  };
  dropped(in.has_net() || in.has_train_net() || in.test_net_size() > 0,
          "net (give the imported net to ruche train --net)");
  dropped(in.test_iter_size() > 0, "test_iter (ruche validates the whole split)");
  dropped(in.has_test_interval(), "test_interval (ruche validates every epoch: eval_every_epochs)");
  dropped(in.has_snapshot() || in.has_snapshot_prefix(),
          "snapshot (ruche train --checkpoint-every-steps)");
  dropped(in.has_solver_mode() || in.has_device_id(), "solver_mode/device_id (ruche train --device)");
  dropped(in.has_average_loss(), "average_loss");
  return s;
}

CaffeImportResult import_caffe(const CaffeImportOptions& o) {
  CaffeImportResult r;
  RUCHE_REQUIRE(!o.out.empty()) << "ruche import caffe: give -o DIR";
  const std::string text = read_text_file(o.net);
  r.net = caffe_net_from_text(text, o.net, &r.report);

  // The training data layer's transform_param (or the older data_param fields).
  cf::NetParameter caffe_net;
  parse_prototxt(text, o.net, caffe_net);
  const cf::LayerParameter* data = nullptr;
  for (const auto& l : caffe_net.layer()) {
    if ((l.type() == "Data" || l.type() == "ImageData") && in_phase(l, cf::TRAIN)) data = &l;
  }
  std::vector<std::int64_t> input_dims;
  for (const auto& l : r.net.layer()) {
    if (l.type() == "Input" && l.input_param().dim_size() > 0) {
      input_dims.assign(l.input_param().dim().begin(), l.input_param().dim().end());
      break;
    }
  }
  if (input_dims.empty() && !o.input.empty()) input_dims.assign(o.input.begin(), o.input.end());
  make_directories(o.out);
  const fs::path out(o.out);

  if (data != nullptr) {
    const auto& tp = data->transform_param();
    proto::Preprocess p;
    p.set_source("caffe");
    p.set_input("pixels");
    float scale = tp.scale();
    std::string mean_file = tp.mean_file();
    std::uint32_t crop = tp.crop_size();
    if (data->type() == "Data" && data->has_data_param()) {  // the older fields
      const auto& dp = data->data_param();
      if (dp.has_scale()) scale = dp.scale();
      if (dp.has_mean_file()) mean_file = dp.mean_file();
      if (dp.has_crop_size()) crop = dp.crop_size();
    }
    p.set_scale(scale);
    int channels = input_dims.empty() ? 0 : static_cast<int>(input_dims[0]);
    if (tp.mean_value_size() > 1) channels = tp.mean_value_size();
    for (float m : tp.mean_value()) p.add_mean(m * scale);
    if (!mean_file.empty()) {
      const std::string path = resolve(mean_file, o.net);
      cf::BlobProto mean;
      RUCHE_REQUIRE(mean.ParseFromString(read_file(path)))
          << path << ": not a Caffe BlobProto (mean_file of '" << data->name() << "')";
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
      channels = static_cast<int>(d[0]);
      r.written.push_back((out / "mean_image.npy").string());
      if (crop > 0 && (d[1] != crop || d[2] != crop))
        r.report.push_back(o.net + ": mean_file is " + std::to_string(d[1]) + "x" +
                           std::to_string(d[2]) + ", crops " + std::to_string(crop) +
                           ": Caffe subtracts it at the crop's offset; not yet carried");
    }
    if (channels == 3) p.set_channel_order("BGR");
    else if (channels == 1) p.set_channel_order("gray");
    else r.report.push_back(o.net + ": the channel count is not known; channel_order left open");
    if (crop > 0 && channels > 0) {
      p.add_sample_shape(channels);
      p.add_sample_shape(static_cast<int>(crop));
      p.add_sample_shape(static_cast<int>(crop));
    }
    if (tp.mirror()) r.report.push_back(o.net + ": mirror: ruche train's augmentation flips (--augment)");
    write_file_durably((out / kPreprocessFile).string(), preprocess_json(p));
    r.written.push_back((out / kPreprocessFile).string());
  }

  if (!o.solver.empty()) {
    auto solver = caffe_solver_from_text(read_text_file(o.solver), o.solver, &r.report);
    if (data != nullptr) {
      const std::uint32_t bs = data->type() == "Data" ? data->data_param().batch_size()
                                                      : data->image_data_param().batch_size();
      if (bs > 0) solver.set_batch_size(static_cast<int>(bs));
    }
    write_file_durably((out / "solver.prototxt").string(), to_prototxt(solver));
    r.written.push_back((out / "solver.prototxt").string());
  }

  if (!o.weights.empty()) {
    cf::NetParameter model;
    RUCHE_REQUIRE(model.ParseFromString(read_file(o.weights)))
        << o.weights << ": not a Caffe NetParameter (.caffemodel)";
    RUCHE_REQUIRE(model.layers_size() == 0 || model.layer_size() > 0)
        << o.weights << ": a V1 .caffemodel ('layers'); ruche import caffe reads V2 ('layer')";
    RUCHE_REQUIRE(!input_dims.empty())
        << o.net << ": the net gives no input shape; give --input C,H,W to import weights";
    NetOptions no;
    no.batch_size = 1;
    no.sample_shape = Shape(input_dims.begin(), input_dims.end());
    auto net = Net::build(r.net, no);
    std::map<std::string, const cf::LayerParameter*> by_name;
    for (const auto& l : model.layer()) by_name[l.name()] = &l;
    const auto state = net->state_dict();
    for (const auto& l : r.net.layer()) {
      std::vector<std::pair<std::string, Tensor>> entries;
      const std::string prefix = l.name() + ".";
      for (const auto& [name, t] : state) {
        if (name.rfind(prefix, 0) == 0 && name != prefix + "num_batches_tracked")
          entries.emplace_back(name, t);
      }
      if (entries.empty()) continue;
      const auto it = by_name.find(l.name());
      if (it == by_name.end() || it->second->blobs_size() == 0) {
        r.report.push_back(o.weights + ": no blobs for layer '" + l.name() +
                           "': ruche's initialisation kept");
        continue;
      }
      const auto& blobs = it->second->blobs();
      const bool bn = l.type() == "BatchNorm";
      const int expected = static_cast<int>(entries.size()) + (bn ? 1 : 0);
      RUCHE_REQUIRE(blobs.size() == expected)
          << o.weights << ": layer '" << l.name() << "' (" << l.type() << ") has " << blobs.size()
          << " blobs, ruche expects " << expected;
      float factor = 1.0f;
      if (bn) {
        const auto f = blob_values(blobs[2]);
        RUCHE_REQUIRE(f.size() == 1) << o.weights << ": layer '" << l.name()
                                     << "': the BatchNorm scale factor blob is not one value";
        factor = f[0] == 0.0f ? 0.0f : 1.0f / f[0];
      }
      for (std::size_t i = 0; i < entries.size(); ++i) {
        const auto& [name, t] = entries[i];
        const auto& b = blobs[static_cast<int>(i)];
        const auto values = blob_values(b);
        std::vector<std::int64_t> want;
        for (int k = 0; k < t.shape().ndim(); ++k) want.push_back(t.shape()[k]);
        const auto have = blob_dims(b);
        RUCHE_REQUIRE(static_cast<std::int64_t>(values.size()) == t.numel() &&
                      (have.empty() || squeezed(have) == squeezed(want)))
            << o.weights << ": layer '" << l.name() << "' blob " << i << " has shape "
            << dims_text(have) << " (" << values.size() << " values), ruche's " << name
            << " is " << dims_text(want);
        float* dst = t.data<float>();
        for (std::size_t k = 0; k < values.size(); ++k) dst[k] = values[k] * (bn ? factor : 1.0f);
        ++r.tensors;
      }
      by_name.erase(it);
    }
    for (const auto& [name, l] : by_name) {
      if (l->blobs_size() > 0)
        r.report.push_back(o.weights + ": blobs of layer '" + name + "' not in the net, dropped");
    }
    save_weights(*net, (out / "weights.npz").string());
    r.written.push_back((out / "weights.npz").string());
  }

  write_file_durably((out / "net.prototxt").string(), to_prototxt(r.net));
  r.written.insert(r.written.begin(), (out / "net.prototxt").string());
  std::string report;
  for (const auto& line : r.report) report += line + "\n";
  write_file_durably((out / "import-report.txt").string(), report);
  r.written.push_back((out / "import-report.txt").string());
  return r;
}

}  // namespace ruche
