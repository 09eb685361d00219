// ruche visualize RUN [--samples K] -o DIR: inside a trained net (engine/train/visualize.h).
// Writes DIR/visualize.npz (filters, activations, inputs, saliency) and DIR/visualize.json, then
// draws DIR/filters.png, DIR/activations-<layer>.png and DIR/saliency.png with matplotlib
// (tools/scripts/figures.py, as `ruche plot` draws); --tensorboard adds the same PNGs to a new
// event file in RUN. (`ruche inspect` is another thing: it reads checkpoints.)
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "engine/log/tensorboard.h"
#include "engine/metrics/json_writer.h"
#include "engine/tensor/npz.h"
#include "engine/train/visualize.h"
#include "tools/commands.h"
#include "tools/python.h"

namespace ruche::tools {
namespace {

namespace fs = std::filesystem;

Tensor ints(const std::vector<std::int32_t>& v) {
  return Tensor::from_vector(v, Shape{static_cast<std::int64_t>(v.size())});
}

// A PNG's width, height and channels from its IHDR chunk; false when it is not a PNG.
bool png_size(const std::string& png, int& width, int& height, int& channels) {
  if (png.size() < 26 || png.compare(1, 3, "PNG") != 0) return false;
  const auto be32 = [&png](std::size_t at) {
    return static_cast<int>((static_cast<unsigned char>(png[at]) << 24) |
                            (static_cast<unsigned char>(png[at + 1]) << 16) |
                            (static_cast<unsigned char>(png[at + 2]) << 8) |
                            static_cast<unsigned char>(png[at + 3]));
  };
  width = be32(16);
  height = be32(20);
  const int color = static_cast<unsigned char>(png[25]);
  channels = color == 6 ? 4 : (color == 2 || color == 3) ? 3 : color == 4 ? 2 : 1;  // 3: palette
  return true;
}

}  // namespace

void add_visualize_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string run, weights, data, layout = "nchw", out;
    int samples = 2, threads = 0;
    bool tensorboard = false;
  };
  static Options o;
  CLI::App* cmd = app.add_subcommand(
      "visualize",
      "Inside a trained net: first-layer filters, every convolution's activation "
      "maps for one sample, class-saliency maps (PNG; TensorBoard on request)");
  cmd->add_option("run", o.run, "the run directory (net.prototxt, preprocess.json, best.npz)")
      ->required();
  cmd->add_option("--weights", o.weights, "weights (default RUN/best.npz, else RUN/model.npz)");
  cmd->add_option("--data", o.data, "the data the run trained on (default: Fashion-MNIST)");
  cmd->add_option("--data-layout", o.layout, "npz images: nchw or nhwc")->capture_default_str();
  cmd->add_option("--samples", o.samples, "saliency samples per class")->capture_default_str();
  cmd->add_option("--threads", o.threads, "CPU threads (0: OMP_NUM_THREADS or all cores)");
  cmd->add_flag("--tensorboard", o.tensorboard,
                "also add the images to a new TensorBoard event file in RUN");
  cmd->add_option("-o,--out", o.out, "the output directory")->required();
  cmd->callback([&exit_code] {
    RUCHE_REQUIRE(o.layout == "nchw" || o.layout == "nhwc")
        << "--data-layout " << o.layout << ": expected nchw or nhwc";
    const std::string python = find_plotting_python();
    VisualizeRequest request;
    request.run = o.run;
    request.weights = o.weights;
    request.data = DataSpec(o.data);
    request.data.layout = o.layout == "nhwc" ? DataLayout::nhwc : DataLayout::nchw;
    request.samples = o.samples;
    request.threads = o.threads;
    const Visualization v = visualize_run(request);
    const fs::path dir(o.out);
    fs::create_directories(dir);
    std::vector<std::pair<std::string, Tensor>> arrays{{"inputs", v.inputs},
                                                       {"saliency", v.saliency},
                                                       {"labels", ints(v.labels)},
                                                       {"predicted", ints(v.predicted)}};
    if (v.filters.defined()) arrays.emplace_back("filters", v.filters);
    for (std::size_t i = 0; i < v.activations.size(); ++i) {
      arrays.emplace_back("act_" + std::to_string(i), v.activations[i]);
    }
    const std::string npz = (dir / "visualize.npz").string();
    save_npz(npz, arrays);
    JsonWriter w;
    w.begin_object().key("weights").value(v.weights).key("split").value(v.split);
    w.key("class_names").begin_array();
    for (const auto& n : v.class_names) w.value(n);
    w.end_array().key("first_conv").value(v.first_conv).key("conv_layers").begin_array();
    for (const auto& n : v.conv_layers) w.value(n);
    w.end_array();
    w.key("sample_label").value(static_cast<int>(v.sample_label));
    w.key("sample_predicted").value(static_cast<int>(v.sample_predicted)).end_object();
    const std::string json = (dir / "visualize.json").string();
    {
      std::ofstream f(json);
      f << w.str() << "\n";
      RUCHE_REQUIRE(f.good()) << json << ": cannot write";
    }
    std::printf("visualize: %s (%s split: %lld saliency samples; %zu convolutions)\n",
                v.weights.c_str(), v.split.c_str(), static_cast<long long>(v.labels.size()),
                v.conv_layers.size());
    const int code =
        run_python(python, shipped_script("figures.py"), {"visualize", npz, json, dir.string()});
    RUCHE_REQUIRE(code == 0 || code == 2) << "figures.py failed (exit " << code << ")";
    exit_code = code;
    if (code != 0 || !o.tensorboard) return;
    std::vector<std::string> names{"filters", "saliency"};
    for (const auto& layer : v.conv_layers) names.push_back("activations-" + layer);
    TensorBoardWriter tb;
    tb.open(o.run);
    for (const auto& name : names) {
      const fs::path png = dir / (name + ".png");
      if (!fs::is_regular_file(png)) continue;
      std::ifstream f(png, std::ios::binary);
      std::ostringstream bytes;
      bytes << f.rdbuf();
      int width = 0, height = 0, channels = 0;
      if (!png_size(bytes.str(), width, height, channels)) continue;
      tb.add_image("visualize/" + name, bytes.str(), width, height, channels, 0);
    }
    tb.flush();
    std::printf("wrote %s\n", tb.path().c_str());
  });
}

}  // namespace ruche::tools
