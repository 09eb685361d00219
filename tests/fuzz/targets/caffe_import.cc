// `ruche import caffe` (engine/interop/caffe_import.h): a Caffe net prototxt, a solver prototxt and
// a binary .caffemodel, as import_caffe reads them from files. The input is three parts: 4 bytes
// (little-endian) of net length, the net text, 4 bytes of solver length, the solver text, and the
// rest is the .caffemodel (an empty part is a file not given). The net and the solver also go
// through caffe_net_from_text and caffe_solver_from_text alone, so a net import_caffe refuses
// early still has its solver read.
#include <algorithm>
#include <string>
#include <vector>

#include "engine/interop/caffe_import.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

// The next length-prefixed part of [data, data + size) from `at`; a short prefix ends the input.
std::string next_part(const std::uint8_t* data, std::size_t size, std::size_t& at) {
  if (size - at < 4) {
    at = size;
    return {};
  }
  const std::size_t length = static_cast<std::size_t>(data[at]) | (std::size_t{data[at + 1]} << 8) |
                             (std::size_t{data[at + 2]} << 16) | (std::size_t{data[at + 3]} << 24);
  at += 4;
  const std::size_t part = std::min(length, size - at);
  std::string bytes(reinterpret_cast<const char*>(data) + at, part);
  at += part;
  return bytes;
}

}  // namespace

RUCHE_FUZZ_TARGET(caffe_import) {
  std::size_t at = 0;
  const std::string net = next_part(data, size, at);
  const std::string solver = next_part(data, size, at);
  const std::string weights(reinterpret_cast<const char*>(data) + at, size - at);

  std::vector<std::string> report;
  if (!solver.empty()) {
    try {
      ruche::caffe_solver_from_text(solver, "solver.prototxt", &report);
    } catch (const ruche::Error&) {
    }
  }
  try {
    ruche::caffe_net_from_text(net, "train_val.prototxt", &report);
  } catch (const ruche::Error&) {
  }

  const ruche::fuzz::TempDir dir;
  ruche::CaffeImportOptions options;
  options.net = dir.path() + "/train_val.prototxt";
  dir.write("train_val.prototxt", net);
  if (!solver.empty()) {
    options.solver = dir.path() + "/solver.prototxt";
    dir.write("solver.prototxt", solver);
  }
  if (!weights.empty()) {
    options.weights = dir.path() + "/net.caffemodel";
    dir.write("net.caffemodel", weights);
  }
  options.out = dir.path() + "/out";
  ruche::import_caffe(options);
}
