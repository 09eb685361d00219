// `ruche import caffe`: Caffe's files as they are (a V1 or V2 net prototxt, a solver, a
// .caffemodel) turned into ruche's: OUT/net.prototxt, OUT/solver.prototxt, OUT/preprocess.json
// (with OUT/mean_image.npy), OUT/weights.npz (PyTorch state_dict names) and OUT/import-report.txt,
// one line per change of meaning or dropped setting. Caffe's schema is
// engine/interop/caffe_import.proto (Caffe's field names and numbers, the subset read here).
#pragma once

#include <string>
#include <vector>

#include "engine/proto/ruche.pb.h"

namespace ruche {

struct CaffeImportOptions {
  std::string net;         // train_val.prototxt or deploy.prototxt (V2 `layer` or V1 `layers`)
  std::string weights;     // X.caffemodel; empty: none
  std::string solver;      // solver.prototxt; empty: none
  std::string out;         // the output folder (created)
  std::vector<int> input;  // C,H,W when the net's data layers give no shape (for --weights)
};

struct CaffeImportResult {
  proto::NetParameter net;
  int tensors = 0;                   // weights.npz: tensors written from the .caffemodel
  std::vector<std::string> report;   // the lines of OUT/import-report.txt
  std::vector<std::string> written;  // the files written
};

// Reads, maps and writes. Anything it cannot carry (a V0 net, an unknown layer type, a blob whose
// shape differs from ruche's, an input shape it cannot determine where one is needed) is one
// ruche::Error line naming the file and the layer.
CaffeImportResult import_caffe(const CaffeImportOptions& options);

// The pieces, for tests: a Caffe net's text and a Caffe solver's text mapped onto ruche's (the
// net's loss weights from Caffe's normalization need shapes: import_caffe sets them).
proto::NetParameter caffe_net_from_text(const std::string& text, const std::string& where,
                                        std::vector<std::string>* report);
// The first Caffe-only field of a net prototxt ("include", "layers", "input_param { shape", ...)
// outside comments; empty when none: how ruche tells an unconverted Caffe net from its own.
std::string caffe_only_field(const std::string& text);

proto::SolverParameter caffe_solver_from_text(const std::string& text, const std::string& where,
                                              std::vector<std::string>* report);

}  // namespace ruche
