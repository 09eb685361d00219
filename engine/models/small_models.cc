// mlp, lenet and fashion_cnn: the small models for MNIST-sized inputs.
#include "engine/models/generators.h"
#include "engine/models/net_builder.h"

namespace ruche::models {

proto::NetParameter mlp(const Shape& sample, int num_classes) {
  NetBuilder b("mlp", sample);
  b.flatten("flatten");
  b.inner_product("fc1", 256);
  b.relu("relu1");
  b.inner_product("fc2", 128);
  b.relu("relu2");
  b.inner_product("fc3", num_classes);
  return b.finish();
}

proto::NetParameter lenet(const Shape& sample, int num_classes) {
  NetBuilder b("lenet", sample);
  b.conv("conv1", {.num_output = 6, .kernel = 5, .pad = 2});
  b.relu("relu1");
  b.max_pool("pool1", 2, 2);
  b.conv("conv2", {.num_output = 16, .kernel = 5});
  b.relu("relu2");
  b.max_pool("pool2", 2, 2);
  b.inner_product("fc1", 120);
  b.relu("relu3");
  b.inner_product("fc2", 84);
  b.relu("relu4");
  b.inner_product("fc3", num_classes);
  return b.finish();
}

proto::NetParameter fashion_cnn(const Shape& sample, int num_classes) {
  NetBuilder b("fashion_cnn", sample);
  int layer = 1;  // conv, bn and relu numbering runs through both blocks
  for (const int block : {1, 2}) {
    const int width = 32 * block;
    for (int i = 0; i < 2; ++i, ++layer) {
      const std::string n = std::to_string(layer);
      conv_bn_relu(b, "conv" + n, "bn" + n, "relu" + n,
                   {.num_output = width, .kernel = 3, .pad = 1});
    }
    b.max_pool("pool" + std::to_string(block), 2, 2);
    b.dropout("drop" + std::to_string(block), 0.25f);
  }
  b.inner_product("fc1", 256);
  b.relu("relu5");
  b.dropout("drop3", 0.5f);
  b.inner_product("fc2", num_classes);
  return b.finish();
}

}  // namespace ruche::models
