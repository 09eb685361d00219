// Built-in models (`--model NAME`): generators of the same NetParameter a net.prototxt would give,
// so `ruche export --model resnet50 --format prototxt` prints them (to_prototxt in
// engine/proto/text_format.h).
//
// Every net starts with the Input layer "data" (tops "data", "label") and ends with the
// SoftmaxWithLoss layer "loss" over the logits and "label" (the autoencoders: EuclideanLoss). A
// parameter is named
// "<layer name>.<suffix>", so the layer names below make PyTorch state_dict names.
//
//   mlp          flatten -> fc1 (256) -> relu1 -> fc2 (128) -> relu2 -> fc3 (classes).
//                784-256-128-10: 235,146 parameters.
//   lenet        LeNet-5 for 28 px: conv1 (6, 5x5, pad 2) -> relu1 -> pool1 (max 2) -> conv2 (16,
//                5x5) -> relu2 -> pool2 -> fc1 (120) -> relu3 -> fc2 (84) -> relu4 -> fc3.
//                61,706 parameters for 1x28x28, 10 classes.
//   fashion_cnn  the default. Two blocks of [conv 3x3 pad 1 (no bias) -> bn -> relu] x 2 ->
//                max pool 2 -> dropout 0.25 (32 then 64 channels), then fc1 (256) -> relu5 ->
//                drop3 (0.5) -> fc2 (classes). Names: conv1 bn1 relu1 conv2 bn2 relu2 pool1 drop1
//                conv3 bn3 relu3 conv4 bn4 relu4 pool2 drop2 fc1 relu5 drop3 fc2.
//                870,826 learnable parameters for 1x28x28, 10 classes (plus 384 BN running
//                statistics); 19.4 M multiply-adds per sample.
//   resnet18     torchvision's ResNet-18 (BasicBlock, [2, 2, 2, 2]); names as its state_dict
//                (conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0/.1, fc). The stem follows
//                the input: above 64 px torchvision's (conv1 7x7 stride 2 pad 3, bn1, relu,
//                maxpool 3x3 stride 2 pad 1); up to 64 px the CIFAR stem (conv1 3x3 stride 1
//                pad 1, bn1, relu, no maxpool). 11,689,512 parameters at 224 px, 1000 classes.
//   resnet50     torchvision's ResNet-50 (Bottleneck v1.5: the stride in conv2, [3, 4, 6, 3],
//                expansion 4), same stems. 25,557,032 parameters at 224 px, 1000 classes.
//   vgg16        torchvision's VGG-16 without batch norm: convs features.0 ... features.28 (ReLU
//                and max pools take the indices between, as torchvision counts them), then
//                classifier.0 (4096) -> ReLU -> Dropout -> classifier.3 (4096) -> ReLU -> Dropout
//                -> classifier.6. torchvision's adaptive average pool to 7x7 is the identity for
//                224..255 px inputs, and such inputs give torchvision's layout exactly
//                (138,357,544 parameters, 1000 classes). Smaller inputs (32..223 px) take a
//                global average pool after the features and a 512-wide classifier (the usual
//                CIFAR VGG; same names, other shapes: not loadable into torchvision's vgg16).
//                Inputs under 32 px or over 255 px are rejected.
//
//   mlp_autoencoder   flatten -> enc1 (256) -> relu1 -> code (bottleneck) -> relu2 -> dec1 (256)
//                     -> relu3 -> dec2 (the sample's size) -> sigmoid -> EuclideanLoss against
//                     "label", the input itself (train with --reconstruct).
//   conv_autoencoder  28x28 or 32x32 images: enc1 (16, 3x3 stride 2 pad 1) -> relu1 -> enc2 (32,
//                     same) -> relu2 -> code (bottleneck, kernel H/4: [N, 1, 1]) -> dec1
//                     (Deconvolution 32, kernel H/4) -> relu3 -> dec2 (Deconvolution 16, 3x3
//                     stride 2 pad 1 output_padding 1) -> relu4 -> up (Upsample x2, nearest) ->
//                     dec3 (C, 3x3 pad 1) -> sigmoid -> EuclideanLoss against "label".
//
// Conv layers before a batch norm have no bias, as in torchvision.
#pragma once

#include <string>
#include <vector>

#include "engine/proto/ruche.pb.h"
#include "engine/tensor/shape.h"

namespace ruche {

struct ModelOptions {
  // One input sample, [C, H, W] (mlp: any shape). Empty: the model's usual input, [1, 28, 28]
  // for mlp, lenet and fashion_cnn, [3, 224, 224] for resnet18, resnet50 and vgg16. It is
  // written into the Input layer, and picks the ResNet stem and the VGG classifier.
  Shape sample_shape;
  // The classifier's width; 0 leaves num_output 0 (the Net takes it from the dataset).
  int num_classes = 0;
  // Autoencoders: the code's size (--bottleneck); 0: 32.
  int bottleneck = 0;
};

// The model `name` (one of builtin_model_names()); an unknown name, or an input the model cannot
// take, is a ruche::Error (the former lists the known names).
proto::NetParameter builtin_model(const std::string& name, const ModelOptions& options);
// The built-in model names, sorted.
std::vector<std::string> builtin_model_names();
// The model `--model` picks when none is named.
inline constexpr const char* kDefaultModel = "fashion_cnn";

}  // namespace ruche
