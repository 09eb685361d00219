#include "engine/train/visualize.h"

#include <algorithm>
#include <filesystem>

#include "engine/error.h"
#include "engine/proto/text_format.h"
#include "engine/train/eval_run.h"
#include "engine/train/train_data.h"
#include "engine/train/trainer.h"
#include "engine/train/weights.h"
#include "ops/ops.h"

namespace ruche {
namespace fs = std::filesystem;
namespace {

Shape with_batch(std::int64_t n, const Shape& sample) {
  Shape s{n};
  for (std::int64_t d : sample) s.push_back(d);
  return s;
}

std::int32_t argmax_row(const Tensor& logits) {
  const Tensor host = logits.to(Device::cpu());
  const float* p = host.data<float>();
  return static_cast<std::int32_t>(std::max_element(p, p + host.numel()) - p);
}

}  // namespace

Tensor class_saliency(Net& net, const Tensor& inputs, const std::vector<std::int32_t>& classes,
                      std::vector<std::int32_t>* predicted) {
  RUCHE_CHECK(net.input().shape()[0] == 1 && net.input_grad().defined())
      << "class_saliency needs a net of batch 1 built with input_grad";
  const std::int64_t n = inputs.shape()[0];
  RUCHE_REQUIRE(static_cast<std::int64_t>(classes.size()) == n)
      << "class_saliency: " << classes.size() << " classes for " << n << " samples";
  Tensor out = Tensor::zeros(inputs.shape());
  const Tensor output = net.output();
  const std::int64_t k = output.numel();
  StepContext ctx;
  ctx.phase = Phase::test;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t c = classes[static_cast<std::size_t>(i)];
    RUCHE_REQUIRE(c >= 0 && c < k) << "class_saliency: class " << c << " of " << k << " outputs";
    net.input().copy_from(inputs.narrow(0, i, 1).view(net.input().shape()));
    net.forward(ctx);
    if (predicted) predicted->push_back(argmax_row(net.output()));
    std::vector<float> onehot(static_cast<std::size_t>(k), 0.0f);
    onehot[static_cast<std::size_t>(c)] = 1.0f;
    net.backward_from_output(Tensor::from_vector(onehot, output.shape()).to(output.device()), ctx);
    out.narrow(0, i, 1).copy_from(
        net.input_grad()
            .to(Device::cpu())
            .view(with_batch(1, Shape(inputs.shape().begin() + 1, inputs.shape().end()))));
  }
  return out;
}

Visualization visualize_run(const VisualizeRequest& request) {
  RUCHE_REQUIRE(request.samples >= 0) << "--samples " << request.samples << ": expected >= 0";
  RUCHE_REQUIRE(fs::is_directory(request.run)) << request.run << ": not a run directory";
  std::string weights = request.weights;
  if (weights.empty()) {
    const fs::path best = fs::path(request.run) / "best.npz";
    weights =
        fs::is_regular_file(best) ? best.string() : (fs::path(request.run) / "model.npz").string();
  }
  const RunFiles files = locate_run_files(weights);
  proto::SolverParameter solver = default_solver();
  if (!files.solver_file.empty()) {
    solver.Clear();
    load_prototxt(files.solver_file, solver);
  }
  NetSource source;
  const proto::NetParameter net_param = load_net(files.net_file, &source);
  ops::set_num_threads(request.threads);
  // The splits as the run made them, normalised by its record.
  const PreprocessSource recorded = PreprocessSource::in_dir(files.record_dir());
  NormalizedSplits opened =
      open_normalized_splits(request.data, solver.val_fraction(), solver.random_seed(), recorded);
  const DataSplits& splits = opened.splits;
  Visualization v;
  v.weights = files.weights;
  v.class_names = splits.train->class_names();
  DatasetPtr data = splits.val ? splits.val : splits.test ? splits.test : splits.train;
  v.split = splits.val ? "val" : splits.test ? "test" : "train";

  NetOptions options;
  options.batch_size = 1;
  options.sample_shape = splits.train->sample_shape();
  options.num_classes = splits.train->num_classes();
  options.source = source;
  options.input_grad = true;
  options.fold_batch_norms = false;  // every blob's feature maps are read after the forward
  std::unique_ptr<Net> net = Net::build(net_param, options);
  const LoadReport loaded = load_weights(*net, files.weights, true);
  RUCHE_REQUIRE(loaded.missing.empty() && loaded.mismatched.empty())
      << files.weights << ": does not match the net of " << files.net_file;

  // The samples: the first `samples` of each class, in the split's order, normalised.
  const Shape sample = data->sample_shape();
  const int classes = data->num_classes();
  std::vector<int> taken(static_cast<std::size_t>(classes), 0);
  std::vector<std::vector<float>> rows(static_cast<std::size_t>(classes));
  std::vector<float> x(static_cast<std::size_t>(data->sample_numel()));
  TransformOptions t;
  t.norm = opened.norm;
  t.augment.enabled = false;
  const Transform transform(sample, t);
  std::int64_t first = -1;
  for (std::int64_t i = 0; i < data->size(); ++i) {
    const auto c = static_cast<std::size_t>(data->label(i));
    if (first < 0) first = i;
    if (taken[c] >= request.samples) continue;
    data->read(i, x.data());
    transform.normalize(x.data());
    rows[c].insert(rows[c].end(), x.begin(), x.end());
    ++taken[c];
  }
  RUCHE_REQUIRE(first >= 0) << "the " << v.split << " split is empty";
  std::int64_t n = 0;
  for (int k : taken) n += k;
  v.inputs = Tensor::empty(with_batch(n, sample));
  float* p = v.inputs.data<float>();
  for (int c = 0; c < classes; ++c) {
    const auto& row = rows[static_cast<std::size_t>(c)];
    p = std::copy(row.begin(), row.end(), p);
    for (int k = 0; k < taken[static_cast<std::size_t>(c)]; ++k) v.labels.push_back(c);
  }
  v.saliency = class_saliency(*net, v.inputs, v.labels, &v.predicted);

  // Filters of the first convolution.
  const auto& layers = net->layers();
  for (std::size_t li = 0; li < layers.size(); ++li) {
    if (layers[li]->type() != "Convolution") continue;
    v.conv_layers.push_back(layers[li]->name());
    if (!v.first_conv.empty()) continue;
    v.first_conv = layers[li]->name();
    for (const ParamEntry& e : net->param_table()) {
      if (e.layer == static_cast<int>(li) && e.role == ParamRole::weight) {
        v.filters = net->state_tensor(e.name).to(Device::cpu()).clone();
        break;
      }
    }
  }

  // Every convolution's output for the first sample of the split, taken right after the layer
  // runs (an in-place activation after it overwrites the blob later).
  data->read(first, x.data());
  transform.normalize(x.data());
  v.sample_label = data->label(first);
  net->input().copy_from(Tensor::from_vector(x, with_batch(1, sample)).to(net->input().device()));
  StepContext ctx;
  ctx.phase = Phase::test;
  net->set_layer_timer([&](std::size_t li, bool backward, auto, auto) {
    if (backward || layers[li]->type() != "Convolution") return;
    const std::string& top = net->param().layer(static_cast<int>(li)).top(0);
    const Tensor out = net->blob(top).to(Device::cpu()).clone();
    v.activations.push_back(out.view(Shape(out.shape().begin() + 1, out.shape().end())));
  });
  net->forward(ctx);
  net->set_layer_timer(nullptr);
  v.sample_predicted = argmax_row(net->output());
  return v;
}

}  // namespace ruche
