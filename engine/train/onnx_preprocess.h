// The nodes in front of the net for `ruche export --format onnx` (engine/train/onnx_export.h):
// the run's preprocessing record (proto::Preprocess, engine/data/preprocess.h) applied to the data
// as users have it, as the loaders apply it. Internal to the ONNX export.
#pragma once

#include <string>

#include "engine/proto/ruche.pb.h"
#include "engine/tensor/tensor.h"
#include "engine/train/onnx_export.h"
#include "engine/train/onnx_graph.h"

namespace ruche::onnx_detail {

// What the graph input takes, in words (the input's doc_string, and what `ruche export` prints);
// `record` null: a run from before records.
std::string input_text(const proto::Preprocess* record, const Shape& sample);

// The record's steps as nodes from "input" (the loaders' order, engine/data/transform.h
// Normalization): times scale, RGB -> BGR, minus the mean image, per channel minus mean over std.
// Returns the value the net reads. Anything in the record that does not fit the net is a one-line
// ruche::Error naming the record.
std::string add_preprocess(GraphBuilder& g, const OnnxPreprocess& p, const Shape& sample);

}  // namespace ruche::onnx_detail
