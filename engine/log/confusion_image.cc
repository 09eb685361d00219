#include "engine/log/confusion_image.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/log/png.h"

namespace ruche {

PngImage confusion_image(const ConfusionMatrix& confusion, int cell_pixels) {
  const int c = std::max(confusion.num_classes(), 1);
  const int cell = cell_pixels > 0 ? cell_pixels : std::clamp(512 / c, 1, 64);
  PngImage image;
  image.width = image.height = c * cell;
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(image.width) * image.height * 3);
  constexpr int kLight[3] = {255, 255, 255}, kDark[3] = {8, 48, 107};  // matplotlib's Blues ends
  for (int t = 0; t < confusion.num_classes(); ++t) {
    const std::int64_t support = confusion.support(t);
    for (int p = 0; p < confusion.num_classes(); ++p) {
      const double share =
          support ? static_cast<double>(confusion.at(t, p)) / static_cast<double>(support) : 0;
      std::uint8_t color[3];
      for (int k = 0; k < 3; ++k) {
        const double value = kLight[k] + share * (kDark[k] - kLight[k]);
        color[k] = static_cast<std::uint8_t>(std::lround(value));
      }
      for (int y = t * cell; y < (t + 1) * cell; ++y) {
        for (int x = p * cell; x < (p + 1) * cell; ++x) {
          std::copy(color, color + 3,
                    rgb.begin() + (static_cast<std::ptrdiff_t>(y) * image.width + x) * 3);
        }
      }
    }
  }
  image.png = encode_png_rgb(image.width, image.height, rgb);
  return image;
}

}  // namespace ruche
