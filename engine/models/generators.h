// The generators behind builtin_model() (engine/models/models.h), one per architecture family.
// They take a sample shape already checked to be [C, H, W] (any rank for mlp).
#pragma once

#include <string>

#include "engine/proto/ruche.pb.h"
#include "engine/tensor/shape.h"

namespace ruche::models {

proto::NetParameter mlp(const Shape& sample, int num_classes);
// Autoencoders (finish_reconstruction): the code has `bottleneck` values.
proto::NetParameter mlp_autoencoder(const Shape& sample, int bottleneck);
proto::NetParameter conv_autoencoder(const Shape& sample, int bottleneck);
proto::NetParameter lenet(const Shape& sample, int num_classes);
proto::NetParameter fashion_cnn(const Shape& sample, int num_classes);
// depth 18 (BasicBlock) or 50 (Bottleneck).
proto::NetParameter resnet(int depth, const Shape& sample, int num_classes);
proto::NetParameter vgg16(const Shape& sample, int num_classes);

}  // namespace ruche::models
