// JPEG through libjpeg-turbo's jpeglib API: size from the header, decode to interleaved RGB
// (grayscale expanded, CMYK / YCCK converted, Adobe's inverted CMYK included) at a DCT scale of
// 1/8 .. 8/8, and encode RGB, gray or CMYK (for tests and `ruche convert --resize-short`).
// Corrupt data is a ruche::Error naming the file, never an exit().
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ruche {

struct JpegInfo {
  int width = 0, height = 0;
  int components = 0;  // 1 gray, 3 YCbCr / RGB, 4 CMYK / YCCK
};

// An interleaved 8-bit image: height rows of width * channels bytes.
struct Image8 {
  int width = 0, height = 0, channels = 0;
  std::vector<std::uint8_t> pixels;
  std::uint8_t* row(int y) {
    return pixels.data() + static_cast<std::size_t>(y) * width * channels;
  }
  const std::uint8_t* row(int y) const {
    return pixels.data() + static_cast<std::size_t>(y) * width * channels;
  }
};

// The header's size and components; `what` names the bytes in errors.
JpegInfo jpeg_info(const std::uint8_t* data, std::size_t size, const std::string& what);

// The size the decoder produces at scale scale_eighths / 8 (libjpeg rounds up).
int jpeg_scaled_size(int size, int scale_eighths);

// Picks the DCT scale in eighths (1..8) from the full-size header, before decoding starts.
using ScaleChooser = std::function<int(const JpegInfo&)>;

// A window of an image in pixels: columns [left, left + width), rows [top, top + height).
struct PixelWindow {
  int left = 0, top = 0, width = 0, height = 0;
};

// Picks the window the caller will read from the image's size at the chosen scale.
using WindowChooser = std::function<PixelWindow(int scaled_width, int scaled_height)>;

// Part of a decoded image: `image` covers at least the window asked for and sits at (left, top)
// of the whole, which is full_width x full_height at the chosen scale.
struct DecodedWindow {
  Image8 image;
  int left = 0, top = 0;
  int full_width = 0, full_height = 0;
};

// Decodes only the window choose_window picks (the whole image when empty): libjpeg-turbo's
// jpeg_crop_scanline (widened to whole iMCU columns) and jpeg_skip_scanlines skip the inverse
// DCT, upsampling and colour conversion of the rest, and decoding stops after its last row.
// The pixels are those of a whole decode at the same scale.
DecodedWindow decode_jpeg_rgb_window(const std::uint8_t* data, std::size_t size,
                                     const std::string& what, const ScaleChooser& choose_scale,
                                     const WindowChooser& choose_window);

// Decodes to RGB at the scale choose_scale picks (full size when empty). Throws ruche::Error
// naming `what` for unreadable or truncated data.
Image8 decode_jpeg_rgb(const std::uint8_t* data, std::size_t size, const std::string& what,
                       const ScaleChooser& choose_scale = {});
// Decodes to RGB at scale scale_eighths / 8.
Image8 decode_jpeg_rgb(const std::uint8_t* data, std::size_t size, const std::string& what,
                       int scale_eighths);

// Encodes an RGB (3), gray (1) or CMYK (4) image at quality 1..100. CMYK is written with an
// Adobe marker, so decode_jpeg_rgb reads its values as inverted (as Photoshop stores them), and
// as YCCK when cmyk_as_ycck.
std::vector<std::uint8_t> encode_jpeg(const Image8& image, int quality = 90,
                                      bool cmyk_as_ycck = false);

}  // namespace ruche
