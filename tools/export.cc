// ruche export: a run's (or a checkpoint's) weights as an npz with PyTorch state_dict names, the
// net with its weights as an ONNX model, or a net (a run's, a checkpoint's, or a built-in model's)
// as prototxt.
#include "engine/train/export.h"

#include <charconv>
#include <cstdio>
#include <fstream>
#include <system_error>

#include "engine/models/models.h"
#include "engine/proto/text_format.h"
#include "engine/train/onnx_export.h"
#include "tools/commands.h"
#include "tools/flags.h"

namespace ruche::tools {
namespace {

void write_text(const std::string& path, const std::string& text) {
  if (path.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return;
  }
  std::ofstream out(path, std::ios::trunc);
  RUCHE_REQUIRE(out) << path << ": cannot write (-o)";
  out << text;
  RUCHE_REQUIRE(out.good()) << path << ": write failed (-o)";
}

// --threshold T as the float ruche eval reports (its JSON writes the shortest text that reads back
// as that float, so parsing it as a float gives the very threshold eval counted with).
float parse_threshold(const std::string& text) {
  float t = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), t);
  RUCHE_REQUIRE(ec == std::errc() && end == text.data() + text.size() && t > 0 && t < 1)
      << "--threshold " << text << ": expected a number in (0, 1)";
  return t;
}

}  // namespace

void add_export_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string from, model, format, output, input, threshold, net;
    int classes = 0;
    bool no_fold_bn = false;
  };
  static Options o;
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Write a run's or checkpoint's weights (npz), its model (onnx) or a net (prototxt)");
  cmd->add_option("--from", o.from,
                  "a run directory, a weights file W.npz, or a checkpoint (RUN/ckpt/step-N, "
                  "RUN/ckpt/latest, RUN/ckpt)");
  cmd->add_option("--model", o.model, "a built-in model (prototxt only)");
  cmd->add_option("--net", o.net,
                  "npz or onnx: this net (e.g. a deploy net) instead of the one beside the "
                  "weights; weights of layers it lacks (auxiliary heads) are left out");
  cmd->add_option("--format", o.format, "npz, onnx or prototxt")
      ->required()
      ->check(CLI::IsMember({"npz", "onnx", "prototxt"}));
  cmd->add_option("-o,--output", o.output, "output file (prototxt: stdout when absent)");
  cmd->add_option("--input", o.input,
                  "built-in model, or onnx from a net whose Input layer gives no dims: the input "
                  "sample C,H,W");
  cmd->add_option("--classes", o.classes, "built-in model: classifier width (0: left open)");
  cmd->add_option("--threshold", o.threshold,
                  "onnx, a two-class model: add the output \"decision\" (1 where probs[:, 1] >= "
                  "T), T in (0, 1), e.g. the threshold ruche eval --target-recall chose on val");
  cmd->add_flag("--no-fold-bn", o.no_fold_bn,
                "onnx: keep BatchNormalization nodes instead of folding each batch norm into the "
                "convolution before it (when nothing else reads that convolution's output)");
  cmd->callback([&exit_code] {
    RUCHE_REQUIRE(o.from.empty() != o.model.empty())
        << "give --from RUN|W.npz|CKPT or --model NAME";
    RUCHE_REQUIRE(o.net.empty() || o.format != "prototxt")
        << "--net picks the net of an npz or onnx export; --format prototxt prints --from's net";
    RUCHE_REQUIRE(o.threshold.empty() || o.format == "onnx")
        << "--threshold adds the decision to an ONNX model: give --format onnx";
    RUCHE_REQUIRE(!o.no_fold_bn || o.format == "onnx")
        << "--no-fold-bn shapes an ONNX model: give --format onnx";
    if (o.format == "npz") {
      RUCHE_REQUIRE(!o.from.empty()) << "--format npz exports weights: give --from RUN|W.npz|CKPT";
      RUCHE_REQUIRE(!o.output.empty()) << "--format npz needs -o FILE.npz";
      const int n = export_weights(o.from, o.output, o.net);
      std::printf("wrote %d tensors to %s\n", n, o.output.c_str());
    } else if (o.format == "onnx") {
      RUCHE_REQUIRE(!o.from.empty()) << "--format onnx exports a trained net: give --from RUN|CKPT";
      RUCHE_REQUIRE(!o.output.empty()) << "--format onnx needs -o FILE.onnx";
      OnnxOptions options;
      options.sample_shape = parse_shape_flag("--input", o.input);
      options.net_file = o.net;
      options.fold_batch_norm = !o.no_fold_bn;
      if (!o.threshold.empty()) options.threshold = parse_threshold(o.threshold);
      const OnnxSummary s = export_onnx(o.from, o.output, options);
      std::string input = "N";
      for (const std::int64_t d : s.input) input += ", " + std::to_string(d);
      std::printf("wrote ONNX opset %d (input [%s], %d nodes, %d initializers%s) to %s\n",
                  kOnnxOpset, input.c_str(), s.nodes, s.initializers,
                  s.decision ? ", output decision" : "", o.output.c_str());
      if (s.preprocess) {
        std::printf("input: %s; the graph scales and normalises them\n", s.input_text.c_str());
      } else {
        std::printf(
            "input: the model expects normalised input (as ruche's loader gives the net): "
            "the run predates preprocessing records\n");
      }
    } else if (!o.from.empty()) {
      write_text(o.output, export_net(o.from));
    } else {
      const Shape input = parse_shape_flag("--input", o.input);
      RUCHE_REQUIRE(o.classes >= 0) << "--classes " << o.classes << ": expected 0 or more";
      write_text(o.output, to_prototxt(builtin_model(o.model, ModelOptions{input, o.classes})));
    }
    exit_code = 0;
  });
}

}  // namespace ruche::tools
