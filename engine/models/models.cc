// builtin_model(): the registry of built-in models and the checks of their inputs.
#include "engine/models/models.h"

#include <map>

#include "engine/error.h"
#include "engine/models/generators.h"

namespace ruche {
namespace {

struct Model {
  Shape default_sample;
  bool image_only;  // needs a [C, H, W] sample
  proto::NetParameter (*generate)(const Shape& sample, int num_classes);
};

const std::map<std::string, Model>& registry() {
  static const std::map<std::string, Model> models = {
      {"mlp", {{1, 28, 28}, false, &models::mlp}},
      {"lenet", {{1, 28, 28}, true, &models::lenet}},
      {"fashion_cnn", {{1, 28, 28}, true, &models::fashion_cnn}},
      {"resnet18",
       {{3, 224, 224}, true, [](const Shape& s, int n) { return models::resnet(18, s, n); }}},
      {"resnet50",
       {{3, 224, 224}, true, [](const Shape& s, int n) { return models::resnet(50, s, n); }}},
      {"vgg16", {{3, 224, 224}, true, &models::vgg16}},
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
  return model.generate(sample, options.num_classes);
}

std::vector<std::string> builtin_model_names() {
  std::vector<std::string> names;
  for (const auto& [name, model] : registry()) names.push_back(name);
  return names;
}

}  // namespace ruche
