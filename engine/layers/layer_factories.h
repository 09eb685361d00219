// One factory per layer kind; each is defined in that kind's file under engine/layers/.
#pragma once

#include <memory>

#include "engine/layers/layer.h"

namespace ruche {

std::unique_ptr<Layer> make_input_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_convolution_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_deconvolution_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_batch_norm_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_relu_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_sigmoid_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_tanh_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_pooling_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_upsample_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_inner_product_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_dropout_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_eltwise_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_flatten_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_softmax_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_lrn_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_concat_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_scale_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_power_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_softmax_with_loss_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_euclidean_loss_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_l1_loss_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_smooth_l1_loss_layer(const proto::LayerParameter& p);
std::unique_ptr<Layer> make_sigmoid_cross_entropy_loss_layer(const proto::LayerParameter& p);

}  // namespace ruche
