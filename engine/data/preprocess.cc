#include "engine/data/preprocess.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/checkpoint/file_io.h"
#include "engine/error.h"
#include "engine/tensor/npy.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

constexpr float kPixelScale = 1.0f / 255.0f;  // what read() applies to pixels

std::vector<float> parse_floats(const std::string& text, const std::string& flag) {
  std::vector<float> values;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    std::size_t used = 0;
    float v = 0;
    try {
      v = std::stof(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    RUCHE_REQUIRE(used == part.size() && used > 0 && std::isfinite(v))
        << flag << ": '" << part << "' is not a number (expected auto, none or M1,M2,M3/S1,S2,S3)";
    values.push_back(v);
  }
  return values;
}

int channels_of(const Shape& shape) { return shape.ndim() == 3 ? static_cast<int>(shape[0]) : 1; }

std::string channel_order_of(const Shape& shape) {
  if (shape.ndim() != 3) return "";
  return shape[0] == 3 ? "RGB" : shape[0] == 1 ? "gray" : "";
}

std::string floats_text(const google::protobuf::RepeatedField<float>& v) {
  std::string s;
  char buffer[32];
  for (float f : v) {
    std::snprintf(buffer, sizeof buffer, "%s%.4g", s.empty() ? "" : ",", static_cast<double>(f));
    s += buffer;
  }
  return s;
}

}  // namespace

NormalizeChoice parse_normalize_flag(const std::string& text) {
  NormalizeChoice c;
  if (text == "auto") return c;
  if (text == "none") {
    c.mode = NormalizeChoice::Mode::none;
    return c;
  }
  const std::size_t slash = text.find('/');
  RUCHE_REQUIRE(slash != std::string::npos)
      << "--normalize " << text << ": expected auto, none or M1,M2,M3/S1,S2,S3";
  c.mode = NormalizeChoice::Mode::given;
  c.mean = parse_floats(text.substr(0, slash), "--normalize " + text);
  c.std = parse_floats(text.substr(slash + 1), "--normalize " + text);
  RUCHE_REQUIRE(c.mean.size() == c.std.size())
      << "--normalize " << text << ": " << c.mean.size() << " means but " << c.std.size()
      << " standard deviations";
  for (float s : c.std) {
    RUCHE_REQUIRE(s > 0) << "--normalize " << text << ": std " << s << ", expected > 0";
  }
  return c;
}

std::string PreprocessSource::record_path() const {
  return (fs::path(record_dir) / kPreprocessFile).string();
}

PreprocessSource PreprocessSource::in_dir(const std::string& dir) {
  PreprocessSource s;
  s.record_dir = dir.empty() ? "." : dir;
  s.record = read_preprocess_in(s.record_dir);
  return s;
}

InputFacts input_facts(const Dataset& train) {
  InputFacts f;
  f.source = train.kind();
  f.pixels = f.source != "npz" && f.source != "synthetic";
  f.sample_shape = train.sample_shape();
  f.class_names = train.class_names();
  return f;
}

Normalization choose_normalization(const NormalizeChoice& choice, const InputFacts& facts,
                                   const Dataset* train) {
  switch (choice.mode) {
    case NormalizeChoice::Mode::none:
      return {};
    case NormalizeChoice::Mode::given: {
      const auto channels = static_cast<std::size_t>(channels_of(facts.sample_shape));
      RUCHE_REQUIRE(choice.mean.size() == channels)
          << "--normalize: " << choice.mean.size() << " means for samples of shape "
          << facts.sample_shape.str() << " (" << channels << " channels)";
      return {choice.mean, choice.std};
    }
    case NormalizeChoice::Mode::automatic:
      break;
  }
  if (train == nullptr) return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};  // ImageNet
  return default_normalization(*train);
}

proto::Preprocess make_preprocess(const InputFacts& facts, const Normalization& norm) {
  RUCHE_CHECK(norm.rescale == 1 && !norm.reverse_channels && norm.mean_image.empty())
      << "make_preprocess takes per-channel statistics only";
  proto::Preprocess r;
  r.set_source(facts.source);
  r.set_input(facts.pixels ? "pixels" : "values");
  r.set_scale(facts.pixels ? kPixelScale : 1.0f);
  const std::string order = channel_order_of(facts.sample_shape);
  if (!order.empty()) r.set_channel_order(order);
  for (float m : norm.mean) r.add_mean(m);
  for (float s : norm.std) r.add_std(s);
  for (std::int64_t d : facts.sample_shape) r.add_sample_shape(static_cast<std::int32_t>(d));
  for (const std::string& name : facts.class_names) r.add_class_names(name);
  return r;
}

Normalization normalization_of(const proto::Preprocess& record, const std::string& record_dir,
                               const InputFacts& facts, const std::string& where) {
  // A record that leaves the shape open (a Caffe import whose Data layer gives none) takes the
  // data's.
  const Shape shape = record.sample_shape_size() == 0
                          ? facts.sample_shape
                          : Shape(record.sample_shape().begin(), record.sample_shape().end());
  RUCHE_REQUIRE(shape == facts.sample_shape)
      << where << ": the record is for samples of shape " << shape.str() << " but the data ("
      << facts.source << ") has " << facts.sample_shape.str();
  const std::string input = record.has_input() ? record.input() : "pixels";
  RUCHE_REQUIRE(input == "pixels" || input == "values")
      << where << ": input '" << input << "', expected pixels or values";
  RUCHE_REQUIRE((input == "pixels") == facts.pixels)
      << where << ": the record takes " << input << " but the data (" << facts.source << ") gives "
      << (facts.pixels ? "pixels" : "values");
  RUCHE_REQUIRE(record.scale() > 0 && std::isfinite(record.scale()))
      << where << ": scale " << record.scale() << ", expected > 0";
  const auto channels = static_cast<std::size_t>(channels_of(shape));
  RUCHE_REQUIRE(record.mean_size() == 0 || static_cast<std::size_t>(record.mean_size()) == channels)
      << where << ": " << record.mean_size() << " means for " << channels << " channels";
  RUCHE_REQUIRE(record.std_size() == 0 || static_cast<std::size_t>(record.std_size()) == channels)
      << where << ": " << record.std_size() << " standard deviations for " << channels
      << " channels";
  for (float s : record.std()) RUCHE_REQUIRE(s > 0) << where << ": std " << s << ", expected > 0";
  RUCHE_REQUIRE(record.class_names_size() == 0 || facts.class_names.empty() ||
                static_cast<std::size_t>(record.class_names_size()) == facts.class_names.size())
      << where << ": the record names " << record.class_names_size() << " classes but the data ("
      << facts.source << ") has " << facts.class_names.size();
  const std::string& order = record.channel_order();
  RUCHE_REQUIRE(order.empty() || order == "gray" || order == "RGB" || order == "BGR")
      << where << ": channel_order '" << order << "', expected gray, RGB or BGR";
  RUCHE_REQUIRE(order != "BGR" || channels == 3)
      << where << ": channel_order BGR for " << channels << " channels";

  Normalization n;
  n.mean.assign(record.mean().begin(), record.mean().end());
  n.std.assign(record.std().begin(), record.std().end());
  n.rescale = record.scale() / (facts.pixels ? kPixelScale : 1.0f);
  if (std::fabs(n.rescale - 1.0f) < 1e-6f) n.rescale = 1;  // 1/255 stored as a float
  n.reverse_channels = order == "BGR";
  if (record.has_mean_image()) {
    const std::string path = (fs::path(record_dir) / record.mean_image()).string();
    const Tensor mean = load_npy(path);
    RUCHE_REQUIRE(mean.shape() == shape) << path << ": a mean image of shape " << mean.shape().str()
                                         << " for samples of shape " << shape.str();
    RUCHE_REQUIRE(mean.dtype() == DType::f32) << path << ": expected float32 values";
    n.mean_image = mean.to_vector();
  }
  return n;
}

void apply_to_decoder(const Normalization& norm, ImageTransformOptions& options,
                      const std::string& where) {
  RUCHE_REQUIRE(norm.mean_image.empty())
      << where << ": a mean image cannot be applied to JPEG sources, whose crops vary; give "
      << "per-channel statistics (--normalize M1,M2,M3/S1,S2,S3)";
  for (std::size_t c = 0; c < 3; ++c) {
    options.mean[c] = norm.mean.empty() ? 0.0f : norm.mean.at(c);
    options.std[c] = norm.std.empty() ? 1.0f : norm.std.at(c);
  }
  options.rescale = norm.rescale;
  options.bgr = norm.reverse_channels;
}

std::string preprocess_json(const proto::Preprocess& record) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(record, &json, options);
  RUCHE_CHECK(status.ok()) << "preprocess record to JSON: " << status.ToString();
  return json;
}

proto::Preprocess parse_preprocess(const std::string& json, const std::string& where) {
  proto::Preprocess record;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &record);
  RUCHE_REQUIRE(status.ok()) << where
                             << ": not a preprocessing record: " << std::string(status.message());
  return record;
}

std::optional<proto::Preprocess> read_preprocess_in(const std::string& dir) {
  const fs::path path = fs::path(dir.empty() ? "." : dir) / kPreprocessFile;
  if (!fs::exists(path)) return std::nullopt;
  std::ifstream in(path);
  RUCHE_REQUIRE(in) << path.string() << ": cannot read";
  std::stringstream text;
  text << in.rdbuf();
  return parse_preprocess(text.str(), path.string());
}

void write_preprocess(const std::string& run_dir, const proto::Preprocess& record,
                      const std::string& from_dir) {
  if (record.has_mean_image()) {
    const fs::path from = fs::path(from_dir) / record.mean_image();
    const fs::path to = fs::path(run_dir) / record.mean_image();
    std::error_code ec;
    if (!fs::exists(to) || !fs::equivalent(from, to, ec)) {
      fs::create_directories(to.parent_path(), ec);
      fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
      RUCHE_REQUIRE(!ec) << from.string() << ": cannot copy the mean image to " << to.string()
                         << ": " << ec.message();
    }
  }
  checkpoint_io::write_file_durably((fs::path(run_dir) / kPreprocessFile).string(),
                                    preprocess_json(record));
}

std::string describe_preprocess(const proto::Preprocess& record) {
  std::string s = record.input() == "values" ? "values" : "pixels";
  if (record.scale() != 1) {
    char buffer[32];
    const double inverse = 1.0 / static_cast<double>(record.scale());
    if (std::fabs(inverse - std::round(inverse)) < 1e-3) {
      std::snprintf(buffer, sizeof buffer, " / %.0f", inverse);
    } else {
      std::snprintf(buffer, sizeof buffer, " x %g", static_cast<double>(record.scale()));
    }
    s += buffer;
  }
  if (record.channel_order() == "BGR") s += ", RGB -> BGR";
  if (record.has_mean_image()) s += ", minus the mean image " + record.mean_image();
  if (record.mean_size() > 0) s += ", mean " + floats_text(record.mean());
  if (record.std_size() > 0) s += " std " + floats_text(record.std());
  if (record.mean_size() == 0 && record.std_size() == 0 && !record.has_mean_image()) {
    s += ", not normalised";
  }
  s += ", ";
  if (record.has_channel_order()) s.append(record.channel_order()).append(" ");
  for (int i = 0; i < record.sample_shape_size(); ++i) {
    if (i > 0) s += 'x';
    s += std::to_string(record.sample_shape(i));
  }
  return s;
}

}  // namespace ruche
