// builtin_model(): the registry of built-in models and the checks of their inputs.
#include "engine/models/models.h"

#include <algorithm>
#include <map>

#include "engine/error.h"
#include "engine/models/generators.h"

namespace ruche {
namespace {

struct Model {
  Shape default_sample;
  bool image_only;  // needs a [C, H, W] sample
  proto::NetParameter (*generate)(const Shape& sample, const ModelOptions& options);
  // The inputs an autoencoder takes (its decoder mirrors them); empty: any.
  std::vector<Shape> only = {};
};

constexpr int kDefaultBottleneck = 32;

int bottleneck_of(const ModelOptions& o) {
  RUCHE_REQUIRE(o.bottleneck >= 0) << "--bottleneck " << o.bottleneck << ": expected > 0";
  return o.bottleneck > 0 ? o.bottleneck : kDefaultBottleneck;
}

const std::map<std::string, Model>& registry() {
  static const std::map<std::string, Model> models = {
      {"mlp",
       {{1, 28, 28},
        false,
        [](const Shape& s, const ModelOptions& o) { return models::mlp(s, o.num_classes); }}},
      {"lenet",
       {{1, 28, 28},
        true,
        [](const Shape& s, const ModelOptions& o) { return models::lenet(s, o.num_classes); }}},
      {"fashion_cnn",
       {{1, 28, 28},
        true,
        [](const Shape& s, const ModelOptions& o) {
          return models::fashion_cnn(s, o.num_classes);
        }}},
      {"resnet18",
       {{3, 224, 224},
        true,
        [](const Shape& s, const ModelOptions& o) {
          return models::resnet(18, s, o.num_classes);
        }}},
      {"resnet50",
       {{3, 224, 224},
        true,
        [](const Shape& s, const ModelOptions& o) {
          return models::resnet(50, s, o.num_classes);
        }}},
      {"vgg16",
       {{3, 224, 224},
        true,
        [](const Shape& s, const ModelOptions& o) { return models::vgg16(s, o.num_classes); }}},
      {"mlp_autoencoder",
       {{1, 28, 28},
        false,
        [](const Shape& s, const ModelOptions& o) {
          return models::mlp_autoencoder(s, bottleneck_of(o));
        }}},
      {"conv_autoencoder",
       {{1, 28, 28},
        true,
        [](const Shape& s, const ModelOptions& o) {
          return models::conv_autoencoder(s, bottleneck_of(o));
        },
        {{1, 28, 28}, {1, 32, 32}, {3, 28, 28}, {3, 32, 32}}}},
  };
  return models;
}

}  // namespace

proto::NetParameter builtin_model(const std::string& name, const ModelOptions& options) {
  const auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (const auto& n : builtin_model_names()) known += (known.empty() ? "" : ", ") + n;
    RUCHE_FAIL() << "unknown model '" << name << "' (known: " << known << ")";
  }
  const Model& model = it->second;
  const Shape sample = options.sample_shape.ndim() ? options.sample_shape : model.default_sample;
  if (model.image_only && sample.ndim() != 3) {
    RUCHE_FAIL() << "model '" << name << "' takes [C, H, W] images, not samples of shape "
                 << sample.str();
  }
  for (const auto d : sample) {
    if (d <= 0) RUCHE_FAIL() << "model '" << name << "': bad sample shape " << sample.str();
  }
  if (options.num_classes < 0) {
    RUCHE_FAIL() << "model '" << name << "': num_classes " << options.num_classes << " < 0";
  }
  if (!model.only.empty() &&
      std::find(model.only.begin(), model.only.end(), sample) == model.only.end()) {
    RUCHE_FAIL() << "model '" << name << "' takes 28x28 or 32x32 images (1 or 3 channels), not "
                 << "samples of shape " << sample.str();
  }
  return model.generate(sample, options);
}

std::vector<std::string> builtin_model_names() {
  std::vector<std::string> names;
  for (const auto& [name, model] : registry()) names.push_back(name);
  return names;
}

}  // namespace ruche
