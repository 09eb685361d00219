// The layer registry: every layer type ruche knows, by its prototxt name (Caffe's LayerRegistry,
// as an explicit list so nothing depends on static-initialisation order or the linker).
#include <algorithm>
#include <map>

#include "engine/layers/layer.h"
#include "engine/layers/layer_factories.h"

namespace ruche {
namespace {

using Factory = std::unique_ptr<Layer> (*)(const proto::LayerParameter&);

const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> factories = {
      {"BatchNorm", &make_batch_norm_layer},
      {"Concat", &make_concat_layer},
      {"Convolution", &make_convolution_layer},
      {"Deconvolution", &make_deconvolution_layer},
      {"Dropout", &make_dropout_layer},
      {"Eltwise", &make_eltwise_layer},
      {"EuclideanLoss", &make_euclidean_loss_layer},
      {"Flatten", &make_flatten_layer},
      {"InnerProduct", &make_inner_product_layer},
      {"Input", &make_input_layer},
      {"LRN", &make_lrn_layer},
      {"L1Loss", &make_l1_loss_layer},
      {"Pooling", &make_pooling_layer},
      {"Power", &make_power_layer},
      {"ReLU", &make_relu_layer},
      {"Scale", &make_scale_layer},
      {"Sigmoid", &make_sigmoid_layer},
      {"SigmoidCrossEntropyLoss", &make_sigmoid_cross_entropy_loss_layer},
      {"SmoothL1Loss", &make_smooth_l1_loss_layer},
      {"Softmax", &make_softmax_layer},
      {"SoftmaxWithLoss", &make_softmax_with_loss_layer},
      {"TanH", &make_tanh_layer},
      {"Upsample", &make_upsample_layer},
  };
  return factories;
}

}  // namespace

std::unique_ptr<Layer> create_layer(const proto::LayerParameter& p) {
  const auto it = registry().find(p.type());
  if (it == registry().end()) {
    std::string known;
    for (const auto& type : known_layer_types())
      known.append(known.empty() ? "" : ", ").append(type);
    RUCHE_FAIL() << "unknown layer type '" << p.type() << "' (known: " << known << ")";
  }
  return it->second(p);
}

std::vector<std::string> known_layer_types() {
  std::vector<std::string> types;
  for (const auto& [type, factory] : registry()) types.push_back(type);
  return types;
}

}  // namespace ruche
