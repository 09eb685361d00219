// `ruche export --format onnx`: a net and its weights as an ONNX model (opset 17) for inference:
// batch norm with its running statistics, dropout gone, the input "input" [N, sample...] with a
// symbolic batch "N", and as outputs the logits ("logits") and, for SoftmaxWithLoss, the class
// probabilities ("probs"). The input is what the net itself reads: already normalised as ruche's
// data pipeline normalises it.
#pragma once

#include <map>
#include <string>

#include "engine/proto/ruche.pb.h"
#include "engine/tensor/tensor.h"

namespace ruche {

inline constexpr int kOnnxOpset = 17;

struct OnnxSummary {
  int nodes = 0;
  int initializers = 0;
  Shape input;  // [sample...], without the batch
};

// The serialized ModelProto of `net` with `weights` (state_dict names, as model.npz). The sample
// shape is the Input layer's dims, else `sample_shape`; with neither, a ruche::Error. A layer ONNX
// cannot express, a missing weight, or a weight no layer uses is a ruche::Error naming it.
std::string onnx_model(const proto::NetParameter& net, const std::map<std::string, Tensor>& weights,
                       const Shape& sample_shape, OnnxSummary* summary = nullptr);

// Writes the ONNX model of `from` (a run directory, W.npz beside a net.prototxt, or a checkpoint,
// as export_weights reads them) to `to`, atomically.
OnnxSummary export_onnx(const std::string& from, const std::string& to, const Shape& sample_shape);

}  // namespace ruche
