#include "engine/data/png.h"

#include <png.h>

#include <cstring>

#include "engine/error.h"

namespace ruche {

bool is_png(const std::uint8_t* data, std::size_t size) {
  static const std::uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return size >= 8 && std::memcmp(data, kSignature, 8) == 0;
}

Image8 decode_png_rgb(const std::uint8_t* data, std::size_t size, const std::string& what) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, data, size)) {
    const std::string message = image.message;
    png_image_free(&image);
    RUCHE_FAIL() << what << ": not a readable PNG (" << message << ")";
  }
  image.format = PNG_FORMAT_RGB;
  Image8 out;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.channels = 3;
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  // Background for alpha: black; the row stride: packed rows.
  const png_color black{0, 0, 0};
  if (!png_image_finish_read(&image, &black, out.pixels.data(), 0, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    RUCHE_FAIL() << what << ": not a readable PNG (" << message << ")";
  }
  png_image_free(&image);
  return out;
}

}  // namespace ruche
