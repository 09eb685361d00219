// onnx_probe NET.prototxt WEIGHTS.npz X.npz OUT.npz: ruche's own inference on the samples x of
// X.npz ([N, sample...] float32), the net in test phase with the weights loaded strictly, written
// as OUT.npz {"logits": [N, K]} for tests/tools/onnx_export.py to hold the ONNX model's outputs to.
//
// onnx_probe --eval WEIGHTS DATA SPLIT OUT.npz: what `ruche eval --weights WEIGHTS --data DATA
// --split SPLIT` computes (engine/train/eval_run.h evaluate_run: the split as the run made it,
// normalised by its record), written as OUT.npz {"probs": [N, K], "labels": [N]} in the split's
// order, for tests/tools/onnx_preprocess.py to hold the ONNX model on raw inputs to.
#include <cstdio>
#include <cstring>

#include "engine/error.h"
#include "engine/graph/net.h"
#include "engine/tensor/npz.h"
#include "engine/train/eval_run.h"
#include "engine/train/weights.h"

namespace {

int probe_eval(char** argv) {
  using namespace ruche;
  EvalRequest request;
  request.weights = argv[2];
  request.data = DataSpec(argv[3]);
  request.split = argv[4];
  request.threads = 2;
  const EvalRunResult r = evaluate_run(request);
  const EvalAccumulator& acc = r.eval.acc;
  const std::int64_t n = acc.samples(), k = acc.num_classes();
  Tensor probs = Tensor::empty(Shape{n, k}, DType::f32);
  std::memcpy(probs.data<float>(), acc.scores().data(), acc.scores().size() * sizeof(float));
  Tensor labels = Tensor::empty(Shape{n}, DType::i32);
  std::memcpy(labels.data<std::int32_t>(), acc.labels().data(),
              acc.labels().size() * sizeof(std::int32_t));
  save_npz(argv[5], {{"probs", probs}, {"labels", labels}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::strcmp(argv[1], "--eval") == 0) {
    try {
      return probe_eval(argv);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "onnx_probe: %s\n", e.what());
      return 1;
    }
  }
  if (argc != 5) {
    std::fprintf(stderr,
                 "usage: onnx_probe NET.prototxt WEIGHTS.npz X.npz OUT.npz\n"
                 "       onnx_probe --eval WEIGHTS DATA SPLIT OUT.npz\n");
    return 2;
  }
  using namespace ruche;
  try {
    const Tensor x = load_npz(argv[3]).at("x");
    const std::map<std::string, Tensor> weights = load_npz(argv[2]);
    NetOptions options;
    options.batch_size = static_cast<int>(x.size(0));
    options.sample_shape = Shape(x.shape().begin() + 1, x.shape().end());
    // A classifier left at num_output 0 takes its width from its weights (the net's last
    // InnerProduct, whose weight is [K, in]).
    const proto::NetParameter param = load_net(argv[1], nullptr);
    for (const auto& layer : param.layer()) {
      const auto it = weights.find(layer.name() + ".weight");
      if (layer.type() == "InnerProduct" && it != weights.end()) {
        options.num_classes = static_cast<int>(it->second.size(0));
      }
    }
    std::unique_ptr<Net> net = Net::build(param, options);
    load_weights(*net, argv[2], /*partial=*/false);
    std::memcpy(net->input().raw_data(), x.raw_data(), x.nbytes());
    // The loss reads the labels (a deploy net has none); the logits do not depend on them.
    if (net->labels().defined()) std::memset(net->labels().raw_data(), 0, net->labels().nbytes());
    StepContext ctx;
    ctx.phase = Phase::test;
    net->forward(ctx);
    save_npz(argv[4], {{"logits", net->output().contiguous()}});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnx_probe: %s\n", e.what());
    return 1;
  }
  return 0;
}
