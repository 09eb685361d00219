// ruche import caffe: Caffe's net, solver and .caffemodel as they are, written in ruche's terms
// (engine/interop/caffe_import.h).
#include <cstdio>
#include <sstream>

#include "engine/error.h"
#include "engine/interop/caffe_import.h"
#include "tools/commands.h"

namespace ruche::tools {
namespace {

std::vector<int> parse_dims(const std::string& text) {
  std::vector<int> dims;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    int v = 0;
    try {
      v = std::stoi(item);
    } catch (const std::exception&) {
      v = 0;
    }
    RUCHE_REQUIRE(v > 0) << "--input " << text << ": expected C,H,W (positive integers)";
    dims.push_back(v);
  }
  RUCHE_REQUIRE(!dims.empty()) << "--input " << text << ": expected C,H,W";
  return dims;
}

}  // namespace

void add_import_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string net, net_flag, weights, solver, out, input;
  };
  static Options o;
  CLI::App* cmd =
      app.add_subcommand("import", "Bring another framework's model into ruche's terms");
  cmd->require_subcommand(1);
  CLI::App* caffe = cmd->add_subcommand(
      "caffe",
      "A Caffe net (V1 or V2 prototxt), solver and .caffemodel (V1 or V2): writes "
      "OUT/net.prototxt, solver.prototxt, preprocess.json, weights.npz and import-report.txt "
      "(one line per change of meaning: BatchNorm + Scale merged, loss divisors as loss_weight, "
      "approximations, dropped settings)");
  caffe->add_option("NET", o.net,
                    "train_val.prototxt or deploy.prototxt (the TRAIN phase's layers)");
  caffe->add_option("--net", o.net_flag, "the net (instead of the positional NET)");
  caffe->add_option("--weights", o.weights, "X.caffemodel: written as OUT/weights.npz");
  caffe->add_option("--solver", o.solver, "solver.prototxt: written as OUT/solver.prototxt");
  caffe->add_option("--input", o.input,
                    "C,H,W: the sample shape, when neither an Input layer nor the Data layer's "
                    "crop_size gives one (needed for --weights and size-dependent loss divisors)");
  caffe->add_option("-o,--out", o.out, "the output folder")->required();
  caffe->callback([&exit_code] {
    RUCHE_REQUIRE(o.net.empty() != o.net_flag.empty())
        << "give the Caffe net once: NET or --net NET";
    CaffeImportOptions options;
    options.net = o.net.empty() ? o.net_flag : o.net;
    options.weights = o.weights;
    options.solver = o.solver;
    options.out = o.out;
    if (!o.input.empty()) options.input = parse_dims(o.input);
    const CaffeImportResult r = import_caffe(options);
    std::printf("imported %s: %d layers", options.net.c_str(), r.net.layer_size());
    if (!o.weights.empty()) std::printf(", %d tensors from %s", r.tensors, o.weights.c_str());
    std::printf("; %zu report lines in %s/import-report.txt\n", r.report.size(), o.out.c_str());
    for (const auto& f : r.written) std::printf("wrote %s\n", f.c_str());
    exit_code = 0;
  });
}

}  // namespace ruche::tools
