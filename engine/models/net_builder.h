// NetBuilder: writes a NetParameter layer by layer for the built-in models. It keeps a cursor,
// the blob the next layer reads; each layer writes a blob named after itself, except the
// in-place ReLU and Dropout, which write over their bottom (Caffe's way).
#pragma once

#include <string>

#include "engine/proto/ruche.pb.h"
#include "engine/tensor/shape.h"

namespace ruche::models {

struct ConvSpec {
  int num_output = 0;
  int kernel = 3;
  int stride = 1;
  int pad = 0;
  bool bias = true;        // false before a batch norm, as torchvision
  int output_padding = 0;  // deconv only (torch.nn.ConvTranspose2d's)
};

class NetBuilder {
 public:
  // Starts the net with its Input layer "data" (tops "data" and "label"); an empty sample shape
  // leaves the Input dims to the dataset.
  NetBuilder(const std::string& net_name, const Shape& sample);

  // The blob the next layer reads; set it to start a branch (a residual shortcut).
  const std::string& cursor() const { return cursor_; }
  void set_cursor(const std::string& blob) { cursor_ = blob; }

  // Each adds one layer reading the cursor and moves the cursor to its top.
  void conv(const std::string& name, const ConvSpec& spec);
  void batch_norm(const std::string& name);
  void relu(const std::string& name);  // in place
  void max_pool(const std::string& name, int kernel, int stride, int pad = 0);
  void global_avg_pool(const std::string& name);
  void inner_product(const std::string& name, int num_output);  // 0: the dataset's classes
  void dropout(const std::string& name, float ratio);           // in place
  void flatten(const std::string& name);
  // Element-wise sum of the cursor and `other` (a residual join).
  void add(const std::string& name, const std::string& other);
  void deconv(const std::string& name, const ConvSpec& spec);  // transposed convolution
  void upsample(const std::string& name, int scale);           // nearest
  void sigmoid(const std::string& name);

  // Ends the net with SoftmaxWithLoss "loss" over the cursor (the logits) and "label".
  proto::NetParameter finish();
  // Ends an autoencoder: EuclideanLoss "loss" (the mean squared error) between the cursor (the
  // reconstruction) and "label" (the input as target, --reconstruct).
  proto::NetParameter finish_reconstruction();

 private:
  proto::LayerParameter& add_layer(const std::string& name, const std::string& type,
                                   bool in_place = false);

  proto::NetParameter net_;
  std::string cursor_;
};

// conv (no bias) -> batch norm -> ReLU, the building block of the CNNs.
void conv_bn_relu(NetBuilder& b, const std::string& conv, const std::string& bn,
                  const std::string& relu, const ConvSpec& spec);

}  // namespace ruche::models
