// A minimal PNG encoder (8-bit RGB, no interlace, filter 0, one zlib IDAT): enough for the images
// ruche writes to TensorBoard, with zlib, which the build already links.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ruche {

// rgb: height rows of width pixels, 3 bytes each (R, G, B). Returns the PNG file's bytes.
std::string encode_png_rgb(int width, int height, const std::vector<std::uint8_t>& rgb);

}  // namespace ruche
