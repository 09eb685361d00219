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

proto::NetParameter mlp_autoencoder(const Shape& sample, int bottleneck) {
  NetBuilder b("mlp_autoencoder", sample);
  b.flatten("flatten");
  b.inner_product("enc1", 256);
  b.relu("relu1");
  b.inner_product("code", bottleneck);
  b.relu("relu2");
  b.inner_product("dec1", 256);
  b.relu("relu3");
  b.inner_product("dec2", static_cast<int>(sample.numel()));
  b.sigmoid("sigmoid");  // the target is in [0, 1]
  return b.finish_reconstruction();
}

// H / 4 after two stride-2 convs (7 for 28 px, 8 for 32); the code is a conv over the whole map,
// so no reshape is needed between the code and the decoder.
proto::NetParameter conv_autoencoder(const Shape& sample, int bottleneck) {
  const int side = static_cast<int>(sample[1]) / 4;
  const int channels = static_cast<int>(sample[0]);
  NetBuilder b("conv_autoencoder", sample);
  b.conv("enc1", {.num_output = 16, .kernel = 3, .stride = 2, .pad = 1});
  b.relu("relu1");
  b.conv("enc2", {.num_output = 32, .kernel = 3, .stride = 2, .pad = 1});
  b.relu("relu2");
  b.conv("code", {.num_output = bottleneck, .kernel = side});  // [bottleneck, 1, 1]
  b.deconv("dec1", {.num_output = 32, .kernel = side});        // [32, H/4, W/4]
  b.relu("relu3");
  b.deconv("dec2", {.num_output = 16, .kernel = 3, .stride = 2, .pad = 1, .output_padding = 1});
  b.relu("relu4");
  b.upsample("up", 2);  // [16, H, W]
  b.conv("dec3", {.num_output = channels, .kernel = 3, .pad = 1});
  b.sigmoid("sigmoid");  // the target is in [0, 1]
  return b.finish_reconstruction();
}

}  // namespace ruche::models
