#include "engine/train/onnx_preprocess.h"

#include <cmath>
#include <filesystem>
#include <vector>

#include "engine/error.h"
#include "engine/tensor/npy.h"

namespace ruche::onnx_detail {
namespace {

int channels_of(const Shape& sample) {
  return sample.ndim() == 3 ? static_cast<int>(sample[0]) : 1;
}

// The shape per-channel statistics broadcast with: [1, C, 1, 1] for images [C, H, W], else one
// channel: [1, 1, ...] (a vector sample [D]: [1, 1]).
Shape stats_shape(const Shape& sample) {
  Shape s{1};
  for (int i = 0; i < sample.ndim(); ++i) {
    s.push_back(sample.ndim() == 3 && i == 0 ? sample[0] : 1);
  }
  return s;
}

}  // namespace

std::string input_text(const proto::Preprocess* record, const Shape& sample) {
  if (record == nullptr) {
    return "values normalised as ruche's loader normalises them (the run predates preprocessing "
           "records)";
  }
  if (record->input() == "values") return "float32 values as the npz stores them";
  std::string s = "float32 pixel values 0-255";
  if (sample.ndim() == 3 && channels_of(sample) == 3) s += " (RGB)";
  if (sample.ndim() == 3 && channels_of(sample) == 1) s += " (gray)";
  return s;
}

std::string add_preprocess(GraphBuilder& g, const OnnxPreprocess& p, const Shape& sample) {
  const proto::Preprocess& r = p.record;
  const Shape recorded(r.sample_shape().begin(), r.sample_shape().end());
  RUCHE_REQUIRE(recorded == sample) << p.where << ": the record is for samples of shape "
                                    << recorded.str() << " but the net reads " << sample.str();
  const std::string input = r.has_input() ? r.input() : "pixels";
  RUCHE_REQUIRE(input == "pixels" || input == "values")
      << p.where << ": input '" << input << "', expected pixels or values";
  RUCHE_REQUIRE(r.scale() > 0 && std::isfinite(r.scale()))
      << p.where << ": scale " << r.scale() << ", expected > 0";
  const int channels = channels_of(sample);
  RUCHE_REQUIRE(r.mean_size() == 0 || r.mean_size() == channels)
      << p.where << ": " << r.mean_size() << " means for " << channels << " channels";
  RUCHE_REQUIRE(r.std_size() == 0 || r.std_size() == channels)
      << p.where << ": " << r.std_size() << " standard deviations for " << channels << " channels";
  for (const float s : r.std()) {
    RUCHE_REQUIRE(s > 0 && std::isfinite(s)) << p.where << ": std " << s << ", expected > 0";
  }
  const std::string& order = r.channel_order();
  RUCHE_REQUIRE(order.empty() || order == "gray" || order == "RGB" || order == "BGR")
      << p.where << ": channel_order '" << order << "', expected gray, RGB or BGR";
  RUCHE_REQUIRE(order != "BGR" || (sample.ndim() == 3 && channels == 3))
      << p.where << ": channel_order BGR for samples of shape " << sample.str();

  std::string x = "input";
  if (r.scale() != 1.0f) {
    // 1/255 (pixels) is a division by 255, as read() computes it (engine/data/in_memory.cc), so
    // the graph's first step is bit-identical to ruche's; any other scale is a product.
    const double inverse = 1.0 / static_cast<double>(r.scale());
    const double whole = std::round(inverse);
    const bool divide = whole >= 2 && std::fabs(inverse - whole) < 1e-3;
    const std::string k =
        g.scalar("preprocess.scale", divide ? static_cast<float>(whole) : r.scale());
    x = g.free_node(divide ? "Div" : "Mul", {x, k}, "preprocess/scale").output(0);
  }
  if (order == "BGR") {  // channel c of the net's input is channel 2 - c of the RGB image
    const std::string idx = g.constant_i64("preprocess.channel_order", {2, 1, 0});
    onnx::NodeProto& n = g.free_node("Gather", {x, idx}, "preprocess/bgr");
    add_attr(n, "axis", std::int64_t{1});
    x = n.output(0);
  }
  if (r.has_mean_image()) {
    const std::string path = (std::filesystem::path(p.dir) / r.mean_image()).string();
    RUCHE_REQUIRE(std::filesystem::is_regular_file(path))
        << p.where << ": its mean image " << path << " does not exist";
    const Tensor mean = load_npy(path);
    RUCHE_REQUIRE(mean.shape() == sample)
        << path << ": a mean image of shape " << mean.shape().str() << " for samples of shape "
        << sample.str();
    RUCHE_REQUIRE(mean.dtype() == DType::f32) << path << ": expected float32 values";
    Shape batched{1};
    for (const std::int64_t d : sample) batched.push_back(d);
    const std::string m = g.constant("preprocess.mean_image", batched, mean.to_vector());
    x = g.free_node("Sub", {x, m}, "preprocess/mean_image").output(0);
  }
  if (r.mean_size() > 0) {
    const std::string m = g.constant("preprocess.mean", stats_shape(sample),
                                     std::vector<float>(r.mean().begin(), r.mean().end()));
    x = g.free_node("Sub", {x, m}, "preprocess/mean").output(0);
  }
  if (r.std_size() > 0) {
    const std::string s = g.constant("preprocess.std", stats_shape(sample),
                                     std::vector<float>(r.std().begin(), r.std().end()));
    x = g.free_node("Div", {x, s}, "preprocess/std").output(0);
  }
  return x;
}

}  // namespace ruche::onnx_detail
