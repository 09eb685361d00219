// VGG-16 (configuration D, no batch norm) with torchvision's layout and state_dict names.
#include "engine/error.h"
#include "engine/models/generators.h"
#include "engine/models/net_builder.h"

namespace ruche::models {
namespace {

constexpr int kPool = 0;  // a max pool in the configuration below
constexpr int kConfigD[] = {64,    64,  kPool, 128, 128,   kPool, 256, 256, 256,
                            kPool, 512, 512,   512, kPool, 512,   512, 512, kPool};
// torchvision's AdaptiveAvgPool2d((7, 7)) is the identity where the features end at 7x7.
constexpr std::int64_t kPooledSize = 7;

}  // namespace

proto::NetParameter vgg16(const Shape& sample, int num_classes) {
  // Five 2x2 max pools: 32 px end at 1x1, 224..255 px at 7x7.
  for (const int axis : {1, 2}) {
    const std::int64_t pooled = sample[axis] / 32;
    if (pooled < 1 || pooled > kPooledSize) {
      RUCHE_FAIL() << "vgg16 takes inputs of 32 to 255 pixels a side (224 for torchvision's "
                   << "layout), not " << sample.str();
    }
  }
  const bool torchvision_head = sample[1] / 32 == kPooledSize && sample[2] / 32 == kPooledSize;
  NetBuilder b("vgg16", sample);
  int index = 0;  // torchvision's index in `features`: every module counts
  auto name = [&](const char* part) { return std::string(part) + "." + std::to_string(index++); };
  for (const int width : kConfigD) {
    if (width == kPool) {
      b.max_pool(name("features"), 2, 2);
    } else {
      b.conv(name("features"), {.num_output = width, .kernel = 3, .pad = 1});
      b.relu(name("features"));
    }
  }
  // Smaller inputs: global average pooling and a 512-wide classifier (the usual CIFAR VGG).
  const int hidden = torchvision_head ? 4096 : 512;
  if (!torchvision_head) b.global_avg_pool("avgpool");
  index = 0;
  for (int i = 0; i < 2; ++i) {
    b.inner_product(name("classifier"), hidden);
    b.relu(name("classifier"));
    b.dropout(name("classifier"), 0.5f);
  }
  b.inner_product(name("classifier"), num_classes);
  return b.finish();
}

}  // namespace ruche::models
