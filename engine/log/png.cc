#include "engine/log/png.h"

#include <zlib.h>

#include "engine/error.h"

namespace ruche {
namespace {

void put_u32_be(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

// A chunk: length, type, data, crc32 (zlib's, the one PNG uses) over type and data.
void put_chunk(std::string& out, const char type[5], const std::string& data) {
  put_u32_be(out, static_cast<std::uint32_t>(data.size()));
  const std::size_t crc_from = out.size();
  out.append(type, 4);
  out += data;
  const auto* bytes = reinterpret_cast<const Bytef*>(out.data() + crc_from);
  put_u32_be(
      out, static_cast<std::uint32_t>(crc32(0L, bytes, static_cast<uInt>(out.size() - crc_from))));
}

}  // namespace

std::string encode_png_rgb(int width, int height, const std::vector<std::uint8_t>& rgb) {
  RUCHE_CHECK(width > 0 && height > 0) << "png of " << width << "x" << height;
  const std::size_t row = static_cast<std::size_t>(width) * 3;
  RUCHE_CHECK(rgb.size() == row * static_cast<std::size_t>(height))
      << "png: " << rgb.size() << " bytes for " << width << "x" << height << " RGB";
  // Each scanline is preceded by its filter type (0: none).
  std::string raw;
  raw.reserve((row + 1) * static_cast<std::size_t>(height));
  for (int y = 0; y < height; ++y) {
    raw.push_back('\0');
    raw.append(reinterpret_cast<const char*>(rgb.data()) + y * row, row);
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  const int rc = compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
                           reinterpret_cast<const Bytef*>(raw.data()),
                           static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION);
  RUCHE_CHECK(rc == Z_OK) << "png: zlib compress2 failed (" << rc << ")";
  packed.resize(packed_size);

  std::string header;
  put_u32_be(header, static_cast<std::uint32_t>(width));
  put_u32_be(header, static_cast<std::uint32_t>(height));
  header += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, filter 0, no interlace
  std::string png("\x89PNG\r\n\x1a\n", 8);
  put_chunk(png, "IHDR", header);
  put_chunk(png, "IDAT", packed);
  put_chunk(png, "IEND", "");
  return png;
}

}  // namespace ruche
