// PNG through libpng's simplified API (png_image): any PNG (gray, palette, alpha, 16-bit) to
// interleaved 8-bit RGB, as PIL's Image.convert("RGB") gives for 8-bit images without alpha.
// Alpha is composited onto black by libpng (PIL drops it: the two agree for opaque pixels);
// 16-bit samples are reduced to 8. Corrupt data is a ruche::Error naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/data/jpeg.h"

namespace ruche {

// Whether the bytes start with PNG's 8-byte signature.
bool is_png(const std::uint8_t* data, std::size_t size);

// Decodes to RGB; throws ruche::Error naming `what` for unreadable data.
Image8 decode_png_rgb(const std::uint8_t* data, std::size_t size, const std::string& what);

}  // namespace ruche
