// ResNet-18 and ResNet-50 with torchvision's layout and state_dict names.
#include "engine/error.h"
#include "engine/models/generators.h"
#include "engine/models/net_builder.h"

namespace ruche::models {
namespace {

// Up to this input size the stem is CIFAR's (3x3 stride 1, no max pool); above it, ImageNet's.
constexpr std::int64_t kSmallInput = 64;

void stem(NetBuilder& b, const Shape& sample) {
  const bool small = sample[1] <= kSmallInput && sample[2] <= kSmallInput;
  if (small) {
    conv_bn_relu(b, "conv1", "bn1", "relu", {.num_output = 64, .kernel = 3, .pad = 1});
  } else {
    conv_bn_relu(b, "conv1", "bn1", "relu", {.num_output = 64, .kernel = 7, .stride = 2, .pad = 3});
    b.max_pool("maxpool", 3, 2, 1);
  }
}

// Adds the shortcut from `input` to the residual branch at the cursor ("<block>.add"). Where
// the shape changes, the shortcut is conv1x1 (stride) + bn, named downsample.0 and .1 (after the
// branch, in torchvision's state_dict order).
void join(NetBuilder& b, const std::string& block, const std::string& input, int in, int out,
          int stride) {
  std::string shortcut = input;
  if (stride != 1 || in != out) {
    const std::string branch = b.cursor();
    b.set_cursor(input);
    b.conv(block + ".downsample.0",
           {.num_output = out, .kernel = 1, .stride = stride, .bias = false});
    b.batch_norm(block + ".downsample.1");
    shortcut = b.cursor();
    b.set_cursor(branch);
  }
  b.add(block + ".add", shortcut);
}

// torchvision's BasicBlock: conv3x3 (stride) bn relu conv3x3 bn, + shortcut, relu.
// Returns the block's output channels.
int basic_block(NetBuilder& b, const std::string& block, int in, int planes, int stride) {
  const std::string input = b.cursor();
  conv_bn_relu(b, block + ".conv1", block + ".bn1", block + ".relu1",
               {.num_output = planes, .kernel = 3, .stride = stride, .pad = 1});
  b.conv(block + ".conv2", {.num_output = planes, .kernel = 3, .pad = 1, .bias = false});
  b.batch_norm(block + ".bn2");
  join(b, block, input, in, planes, stride);
  b.relu(block + ".relu2");
  return planes;
}

// torchvision's Bottleneck (v1.5): conv1x1 bn relu, conv3x3 (stride) bn relu, conv1x1 (x4) bn,
// + shortcut, relu. Returns the block's output channels.
int bottleneck(NetBuilder& b, const std::string& block, int in, int planes, int stride) {
  const int out = planes * 4;
  const std::string input = b.cursor();
  conv_bn_relu(b, block + ".conv1", block + ".bn1", block + ".relu1",
               {.num_output = planes, .kernel = 1});
  conv_bn_relu(b, block + ".conv2", block + ".bn2", block + ".relu2",
               {.num_output = planes, .kernel = 3, .stride = stride, .pad = 1});
  b.conv(block + ".conv3", {.num_output = out, .kernel = 1, .bias = false});
  b.batch_norm(block + ".bn3");
  join(b, block, input, in, out, stride);
  b.relu(block + ".relu3");
  return out;
}

}  // namespace

proto::NetParameter resnet(int depth, const Shape& sample, int num_classes) {
  const bool basic = depth == 18;
  RUCHE_CHECK(basic || depth == 50) << "resnet depth " << depth;
  const int blocks[4] = {2, 2, 2, 2};
  const int bottlenecks[4] = {3, 4, 6, 3};
  NetBuilder b("resnet" + std::to_string(depth), sample);
  stem(b, sample);
  int channels = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const int planes = 64 << stage;
    const int count = basic ? blocks[stage] : bottlenecks[stage];
    for (int i = 0; i < count; ++i) {
      const std::string block = "layer" + std::to_string(stage + 1) + "." + std::to_string(i);
      const int stride = (stage > 0 && i == 0) ? 2 : 1;
      channels = basic ? basic_block(b, block, channels, planes, stride)
                       : bottleneck(b, block, channels, planes, stride);
    }
  }
  b.global_avg_pool("avgpool");
  b.inner_product("fc", num_classes);
  return b.finish();
}

}  // namespace ruche::models
