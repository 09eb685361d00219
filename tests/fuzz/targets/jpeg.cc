// JPEG decoding (ImageFolder, shards): the header, a whole decode at a scale taken from the
// header's size, and a window decode at another scale (the loader's crop path).
#include <algorithm>

#include "engine/data/jpeg.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(jpeg) {
  const ruche::JpegInfo info = ruche::jpeg_info(data, size, "fuzz.jpg");
  const int scale =
      1 + static_cast<int>(
              (static_cast<unsigned>(info.width) ^ static_cast<unsigned>(info.height)) % 8);
  ruche::decode_jpeg_rgb(data, size, "fuzz.jpg", scale);
  ruche::decode_jpeg_rgb_window(
      data, size, "fuzz.jpg", [&](const ruche::JpegInfo&) { return 9 - scale; },
      [](int w, int h) {
        return ruche::PixelWindow{w / 3, h / 4, std::max(1, w / 2), std::max(1, h / 2)};
      });
}
