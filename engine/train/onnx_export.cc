// The ONNX model of a net (engine/train/onnx_export.h): its opset, the input (through the
// preprocessing record's nodes, onnx_preprocess.h), the layers (onnx_layers.h), the outputs with
// the threshold's decision, and the metadata; and export_onnx, which reads a run or checkpoint.
#include "engine/train/onnx_export.h"

#include <onnx/onnx_pb.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/file_io.h"
#include "engine/checkpoint/manifest.h"
#include "engine/data/preprocess.h"
#include "engine/error.h"
#include "engine/graph/net.h"
#include "engine/metrics/json_writer.h"
#include "engine/tensor/npz.h"
#include "engine/train/export.h"
#include "engine/train/onnx_graph.h"
#include "engine/train/onnx_layers.h"
#include "engine/train/onnx_preprocess.h"
#include "engine/train/task.h"

namespace ruche {
namespace {

using namespace onnx_detail;

constexpr int kIrVersion = 8;  // the IR version that goes with opset 17 (ONNX 1.12)

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
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

bool is_loss(const std::string& type) {
  return type == "SoftmaxWithLoss" || is_float_target_loss(type);
}

// The main head: the loss with the highest loss_weight (the first of equal ones), as Net picks;
// -1 for a deploy net, whose last layer's output is the "output".
int main_loss_index(const proto::NetParameter& net) {
  int main_loss = -1;
  float heaviest = -1.0f;
  for (int li = 0; li < net.layer_size(); ++li) {
    const auto& l = net.layer(li);
    if (!is_loss(l.type())) continue;
    const float w = l.loss_weight_size() ? l.loss_weight(0) : 1.0f;
    if (w > heaviest) {
      heaviest = w;
      main_loss = li;
    }
  }
  return main_loss;
}

// The graph input "input" [N, sample...] of the Input layer, whose dims give the sample shape
// (else `sample_shape`); its top is the record's last step (or the input itself). Returns the
// sample shape.
Shape add_input(GraphBuilder& g, onnx::GraphProto& graph, const proto::LayerParameter& layer,
                const Shape& sample_shape, const OnnxPreprocess* pre) {
  const auto& dims = layer.input_param().dim();
  const Shape sample = dims.empty() ? sample_shape : Shape(dims.begin(), dims.end());
  RUCHE_REQUIRE(sample.ndim() > 0)
      << g.where() << ": gives no input dims; pass the sample shape (--input C,H,W)";
  std::vector<std::string> dims_text{"N"};
  for (const std::int64_t d : sample) dims_text.push_back(std::to_string(d));
  onnx::ValueInfoProto& in = *graph.add_input();
  set_float_type(in, "input", dims_text);
  in.set_doc_string(input_text(pre == nullptr ? nullptr : &pre->record, sample));
  // The net reads the record's last step (or the input itself); the labels (top 1) feed only
  // the loss, not exported.
  g.alias(layer.top(0), pre == nullptr ? std::string("input") : add_preprocess(g, *pre, sample));
  return sample;
}

// The main loss's head: "logits" and "probs" (SoftmaxWithLoss) or "output" (a regression).
// Returns the head's name.
std::string add_head(GraphBuilder& g, const proto::LayerParameter& layer) {
  const std::string& type = layer.type();
  const std::string head = type == "SoftmaxWithLoss" ? "logits" : "output";
  const std::string scores = g.input(0);
  // SigmoidCrossEntropyLoss reads logits: the output is their sigmoid, the prediction.
  g.node(type == "SigmoidCrossEntropyLoss" ? "Sigmoid" : "Identity", {scores}, {head}, "/" + head);
  if (type == "SoftmaxWithLoss") {
    onnx::NodeProto& n = g.node("Softmax", {scores}, {"probs"});
    add_attr(n, "axis", std::int64_t{1});
  }
  return head;
}

// The net's layers as nodes from "input" to the head (a deploy net: its last layer's first top
// is the "output"). Returns the sample shape; `head` is the head's name.
Shape add_net(GraphBuilder& g, onnx::GraphProto& graph, const proto::NetParameter& net,
              const std::map<std::string, Tensor>& weights, const OnnxOptions& options,
              const Shape& sample_shape, std::string* head) {
  const OnnxPreprocess* pre = options.preprocess ? &*options.preprocess : nullptr;
  const int main_loss = main_loss_index(net);
  const BatchNormFolds folds(net, options.fold_batch_norm);
  Shape sample;
  std::unique_ptr<Net> shapes;  // built when a layer needs its input's rank
  const std::function<const Net&()> one_sample = [&]() -> const Net& {
    if (!shapes) shapes = one_sample_net(net, weights, sample);
    return *shapes;
  };
  int layer_index = -1;
  for (const proto::LayerParameter& layer : net.layer()) {
    ++layer_index;
    g.begin_layer(layer);
    if (layer.type() == "Input") {
      RUCHE_REQUIRE(sample.ndim() == 0) << g.where() << ": a second Input layer";
      sample = add_input(g, graph, layer, sample_shape, pre);
    } else if (is_loss(layer.type()) && layer_index != main_loss) {
      continue;  // an auxiliary head (a lighter loss_weight): training only
    } else if (is_loss(layer.type())) {
      *head = add_head(g, layer);
    } else {
      add_layer(g, layer, layer_index, folds, one_sample);
    }
  }
  RUCHE_REQUIRE(sample.ndim() > 0) << "the net has no Input layer: nothing to name the ONNX input";
  if (head->empty()) {
    // A deploy net: its last layer's first top is the output.
    const proto::LayerParameter& last = net.layer(net.layer_size() - 1);
    RUCHE_REQUIRE(last.top_size() > 0) << "the net's last layer '" << last.name()
                                       << "' has no top: nothing to name the ONNX output";
    g.begin_layer(last);
    *head = "output";
    g.node("Identity", {g.input_of_blob(last.top(0))}, {*head}, "/" + *head);
  }
  return sample;
}

// decision = probs[:, 1] >= threshold: the comparison ruche's threshold report counts with
// (count_at_threshold, engine/metrics/roc.cc: "positive iff score >= threshold"), in float32.
void add_decision(GraphBuilder& g, onnx::GraphProto& graph, float threshold) {
  const std::string one = g.scalar_i64("decision.class", 1);
  onnx::NodeProto& p1 = g.free_node("Gather", {"probs", one}, "decision/p1");
  add_attr(p1, "axis", std::int64_t{1});
  const std::string t = g.scalar("decision.threshold", threshold);
  g.free_node("GreaterOrEqual", {"decision/p1", t}, "decision/ge");
  onnx::NodeProto& cast = g.free_node("Cast", {"decision/ge"}, "decision");
  add_attr(cast, "to", static_cast<std::int64_t>(onnx::TensorProto::INT64));
  set_float_type(*graph.add_output(), "decision", {"N"}, onnx::TensorProto::INT64);
}

// The outputs: the head, "probs" beside "logits", and with a threshold the "decision".
void add_outputs(GraphBuilder& g, onnx::GraphProto& graph, const proto::NetParameter& net,
                 const std::map<std::string, Tensor>& weights, const Shape& sample,
                 const std::string& head, const std::optional<float>& threshold) {
  // The outputs' shapes (ONNX wants them declared): the net built for one sample says them.
  const std::vector<std::string> out_dims = head_dims(net, weights, sample);
  set_float_type(*graph.add_output(), head, out_dims);
  if (head == "logits") set_float_type(*graph.add_output(), "probs", out_dims);
  if (threshold) {
    RUCHE_REQUIRE(head == "logits" && out_dims.size() == 2 && out_dims[1] == "2")
        << "--threshold needs a two-class classifier; this net's "
        << (head == "logits" ? "probs have " + out_dims.back() + " classes"
                             : std::string("head is a regression"));
    add_decision(g, graph, *threshold);
  }
}

void add_metadata(onnx::ModelProto& model, const std::string& key, const std::string& value) {
  auto* prop = model.add_metadata_props();
  prop->set_key(key);
  prop->set_value(value);
}

// "ruche.preprocess" (the record's JSON) and "ruche.class_names" with a record, "ruche.input",
// and "ruche.threshold" with a threshold.
void add_model_metadata(onnx::ModelProto& model, const OnnxPreprocess* pre, const Shape& sample,
                        const std::optional<float>& threshold) {
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
  if (threshold) {
    JsonWriter j;
    j.value(*threshold);  // the shortest text that reads back as this float
    add_metadata(model, "ruche.threshold", j.str());
  }
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
  const Shape sample = add_net(g, graph, net, weights, options, sample_shape, &head);
  add_outputs(g, graph, net, weights, sample, head, options.threshold);
  add_model_metadata(model, pre, sample, options.threshold);

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
