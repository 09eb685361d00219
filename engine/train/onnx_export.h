// `ruche export --format onnx`: a net and its weights as an ONNX model (opset 17) for inference:
// batch norm with its running statistics (folded into the convolution before it where nothing
// else reads that convolution's output), dropout gone, the input "input" [N, sample...] with a
// symbolic batch "N", and as outputs the logits ("logits") and, for SoftmaxWithLoss, the class
// probabilities ("probs").
//
// The input is the data as users have it, when the run recorded how it became the net's input
// (proto::Preprocess, RUN/preprocess.json; engine/data/preprocess.h): float32 pixel values 0-255
// for image sources (IDX, CIFAR, JPEG folders and shards; cast from uint8), the stored values for
// an npz. Nodes named "preprocess/..." in front of the net apply the record as the loaders do:
// times scale, RGB -> BGR, minus the mean image, per channel minus mean over std. The record's
// JSON is the model's metadata "ruche.preprocess", its class names "ruche.class_names" (a JSON
// list). A run from before records has none: the input is then what the net itself reads, already
// normalised as ruche's data pipeline normalised it.
//
// With a threshold (a two-class model, the threshold `ruche eval --target-recall/precision` chose
// on validation), a third output "decision" [N] int64 is 1 where probs[:, 1] >= threshold, as
// ruche's threshold report counts (engine/metrics/roc.h count_at_threshold), metadata
// "ruche.threshold".
#pragma once

#include <map>
#include <optional>
#include <string>

#include "engine/proto/ruche.pb.h"
#include "engine/tensor/tensor.h"

namespace ruche {

inline constexpr int kOnnxOpset = 17;

// A run's input record and where it was found.
struct OnnxPreprocess {
  proto::Preprocess record;
  std::string dir;    // the folder its mean image (a name relative to it) is in
  std::string where;  // how errors name it: "run/preprocess.json", "CKPT/manifest.pb (preprocess)"
};

struct OnnxOptions {
  // The sample shape when the net's Input layer gives no dims (--input); else the record's.
  Shape sample_shape;
  // Absent: the graph takes the net's own (normalised) input.
  std::optional<OnnxPreprocess> preprocess;
  // Present: the "decision" output (0 < threshold < 1, a net whose probs have two classes).
  std::optional<float> threshold;
  // export_onnx: a net file (--net, e.g. a deploy net) instead of the one beside the weights; the
  // weights of layers it lacks (a training net's auxiliary heads) are left out.
  std::string net_file;
  // A BatchNorm whose input is a convolution's output read by nothing else is folded into that
  // convolution's weight and bias (one Conv node, as torch.onnx exports in eval mode); false
  // keeps BatchNormalization nodes (--no-fold-bn).
  bool fold_batch_norm = true;
};

struct OnnxSummary {
  int nodes = 0;
  int initializers = 0;
  Shape input;              // [sample...], without the batch
  bool preprocess = false;  // the graph applies a record: its input is the data as users have it
  std::string input_text;   // what the input takes: "float32 pixel values 0-255 (gray)", ...
  bool decision = false;    // the "decision" output is there
};

// The serialized ModelProto of `net` with `weights` (state_dict names, as model.npz). The sample
// shape is the Input layer's dims, else options.sample_shape, else the record's; with none, a
// ruche::Error. A layer ONNX cannot express, a missing weight, a weight no layer uses, a record
// that does not fit the net (sample shape, channels, mean image) or a threshold for other than two
// classes is a one-line ruche::Error naming it.
std::string onnx_model(const proto::NetParameter& net, const std::map<std::string, Tensor>& weights,
                       const OnnxOptions& options, OnnxSummary* summary = nullptr);

// The record of `from` (what export_onnx reads): a run directory's preprocess.json; the
// preprocess.json in the folder of a weights file W.npz; a checkpoint's manifest (its mean image
// in the run directory, two levels up from RUN/ckpt/step-N). Absent: a run from before records.
std::optional<OnnxPreprocess> find_onnx_preprocess(const std::string& from);

// Writes the ONNX model of `from` (a run directory, W.npz beside a net.prototxt, or a checkpoint,
// as export_weights reads them) to `to`, atomically, with the record find_onnx_preprocess finds
// (options.preprocess, when set, is used instead).
OnnxSummary export_onnx(const std::string& from, const std::string& to, OnnxOptions options);

}  // namespace ruche
