#include "engine/data/jpeg.h"

#include <algorithm>

// jpeglib.h needs FILE and size_t declared before it.
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <jpeglib.h>
#include <jerror.h>

#include "engine/error.h"

namespace ruche {
namespace {

// The most pixels a decode may produce: any image of up to 4 megapixels, and larger ones up to
// 1024 pixels per byte of JPEG data.
constexpr std::uint64_t kMaxPixelsAlways = std::uint64_t{1} << 22;
constexpr std::uint64_t kMaxPixelsPerByte = 1024;

// libjpeg reports errors through error_exit, which must not return: we longjmp back to the
// frame that called setjmp and throw from there (no C++ objects live in the frames skipped).
struct ErrorManager {
  jpeg_error_mgr pub;  // first, so libjpeg's pointer to it is a pointer to us
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
};

void on_error(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings: a truncated file (libjpeg pads it with gray) is an error; the rest (extraneous bytes
// before a marker, common in ImageNet) decode fine and stay silent.
void on_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_error(cinfo);
}

ErrorManager* install_errors(ErrorManager* e) {
  jpeg_std_error(&e->pub);
  e->pub.error_exit = on_error;
  e->pub.emit_message = on_message;
  return e;
}

struct Decompressor {
  jpeg_decompress_struct cinfo{};
  ErrorManager err;
  bool created = false;
  Decompressor() { cinfo.err = &install_errors(&err)->pub; }
  ~Decompressor() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

struct Compressor {
  jpeg_compress_struct cinfo{};
  ErrorManager err;
  bool created = false;
  unsigned char* buffer = nullptr;  // jpeg_mem_dest's malloc'ed output
  unsigned long size = 0;
  Compressor() { cinfo.err = &install_errors(&err)->pub; }
  ~Compressor() {
    if (created) jpeg_destroy_compress(&cinfo);
    std::free(buffer);
  }
};

[[noreturn]] void fail(const std::string& what, const char* message) {
  throw Error(what + ": not a readable JPEG (" + message + ")");
}

// a * b / 255 rounded, as PIL computes it (its MULDIV255).
int mul_div_255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// One row of CMYK to RGB as PIL does; Adobe files store every channel inverted.
void cmyk_row_to_rgb(const std::uint8_t* in, int width, bool inverted, std::uint8_t* out) {
  for (int x = 0; x < width; ++x, in += 4, out += 3) {
    const int k = inverted ? 255 - in[3] : in[3];
    const int not_k = 255 - k;
    for (int c = 0; c < 3; ++c) {
      const int ink = inverted ? 255 - in[c] : in[c];
      out[c] = static_cast<std::uint8_t>(not_k - mul_div_255(ink, not_k));
    }
  }
}

}  // namespace

int jpeg_scaled_size(int size, int scale_eighths) {
  return static_cast<int>((static_cast<long long>(size) * scale_eighths + 7) / 8);
}

JpegInfo jpeg_info(const std::uint8_t* data, std::size_t size, const std::string& what) {
  Decompressor d;
  if (setjmp(d.err.jump)) fail(what, d.err.message);
  jpeg_create_decompress(&d.cinfo);
  d.created = true;
  jpeg_mem_src(&d.cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&d.cinfo, TRUE);
  return {static_cast<int>(d.cinfo.image_width), static_cast<int>(d.cinfo.image_height),
          d.cinfo.num_components};
}

DecodedWindow decode_jpeg_rgb_window(const std::uint8_t* data, std::size_t size,
                                     const std::string& what, const ScaleChooser& choose_scale,
                                     const WindowChooser& choose_window) {
  Decompressor d;
  DecodedWindow result;
  Image8& image = result.image;
  std::vector<std::uint8_t> cmyk;  // one CMYK row, converted by us
  if (setjmp(d.err.jump)) fail(what, d.err.message);
  jpeg_create_decompress(&d.cinfo);
  d.created = true;
  jpeg_mem_src(&d.cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&d.cinfo, TRUE);
  const J_COLOR_SPACE space = d.cinfo.jpeg_color_space;
  const bool four = space == JCS_CMYK || space == JCS_YCCK;
  // libjpeg turns YCCK into CMYK and gray into RGB itself; CMYK to RGB is ours.
  d.cinfo.out_color_space = four ? JCS_CMYK : JCS_RGB;
  if (choose_scale) {
    const int scale =
        choose_scale({static_cast<int>(d.cinfo.image_width), static_cast<int>(d.cinfo.image_height),
                      d.cinfo.num_components});
    RUCHE_CHECK(scale >= 1 && scale <= 8) << "DCT scale " << scale << "/8";
    d.cinfo.scale_num = static_cast<unsigned>(scale);
    d.cinfo.scale_denom = 8;
  }
  jpeg_start_decompress(&d.cinfo);
  result.full_width = static_cast<int>(d.cinfo.output_width);
  result.full_height = static_cast<int>(d.cinfo.output_height);
  // A header may announce up to 65500 x 65500 pixels in a few bytes, and libjpeg fills what the
  // data lacks with grey: bound what is decoded by what the bytes can hold (a JPEG of photos
  // holds a few pixels a byte, a flat image under a few hundred) before allocating (tests/fuzz).
  const std::uint64_t pixels =
      static_cast<std::uint64_t>(d.cinfo.output_width) * d.cinfo.output_height;
  RUCHE_REQUIRE(pixels <= std::max<std::uint64_t>(kMaxPixelsAlways, kMaxPixelsPerByte * size))
      << what << ": corrupt JPEG: its header says " << d.cinfo.output_width << "x"
      << d.cinfo.output_height << " pixels (at the decoding scale) from " << size << " bytes";
  int last_row = result.full_height;  // one past the last row read
  if (choose_window) {
    const PixelWindow w = choose_window(result.full_width, result.full_height);
    RUCHE_CHECK(w.left >= 0 && w.top >= 0 && w.width > 0 && w.height > 0 &&
                w.left + w.width <= result.full_width && w.top + w.height <= result.full_height)
        << "decode window " << w.width << "x" << w.height << " at (" << w.left << ", " << w.top
        << ") of a " << result.full_width << "x" << result.full_height << " image";
    // A cropped decode's edge columns lack their neighbours' chroma (fancy upsampling): a
    // margin keeps them outside the window. Skipped rows are exact.
    constexpr int kMargin = 2;
    const int margin_left = std::max(0, w.left - kMargin);
    const int margin_right = std::min(result.full_width, w.left + w.width + kMargin);
    if (margin_right - margin_left < result.full_width) {
      JDIMENSION left = static_cast<JDIMENSION>(margin_left);
      JDIMENSION width = static_cast<JDIMENSION>(margin_right - margin_left);
      jpeg_crop_scanline(&d.cinfo, &left, &width);  // moves left down to an iMCU column
      result.left = static_cast<int>(left);
    }
    if (w.top > 0) jpeg_skip_scanlines(&d.cinfo, static_cast<JDIMENSION>(w.top));
    result.top = w.top;
    last_row = w.top + w.height;
  }
  image.width = static_cast<int>(d.cinfo.output_width);
  image.height = last_row - result.top;
  image.channels = 3;
  image.pixels.resize(static_cast<std::size_t>(image.width) * image.height * 3);
  if (four) cmyk.resize(static_cast<std::size_t>(image.width) * 4);
  const bool inverted = d.cinfo.saw_Adobe_marker;
  while (static_cast<int>(d.cinfo.output_scanline) < last_row) {
    const int y = static_cast<int>(d.cinfo.output_scanline) - result.top;
    JSAMPROW row = four ? cmyk.data() : image.row(y);
    jpeg_read_scanlines(&d.cinfo, &row, 1);
    if (four) cmyk_row_to_rgb(cmyk.data(), image.width, inverted, image.row(y));
  }
  // The rows below the window are never decoded.
  if (last_row < result.full_height) {
    jpeg_abort_decompress(&d.cinfo);
  } else {
    jpeg_finish_decompress(&d.cinfo);
  }
  return result;
}

Image8 decode_jpeg_rgb(const std::uint8_t* data, std::size_t size, const std::string& what,
                       const ScaleChooser& choose_scale) {
  return decode_jpeg_rgb_window(data, size, what, choose_scale, {}).image;
}

Image8 decode_jpeg_rgb(const std::uint8_t* data, std::size_t size, const std::string& what,
                       int scale_eighths) {
  return decode_jpeg_rgb(data, size, what,
                         [scale_eighths](const JpegInfo&) { return scale_eighths; });
}

std::vector<std::uint8_t> encode_jpeg(const Image8& image, int quality, bool cmyk_as_ycck) {
  RUCHE_CHECK(image.channels == 1 || image.channels == 3 || image.channels == 4)
      << "encode_jpeg of " << image.channels << " channels";
  RUCHE_CHECK(image.width > 0 && image.height > 0 &&
              image.pixels.size() ==
                  static_cast<std::size_t>(image.width) * image.height * image.channels)
      << "encode_jpeg of a " << image.width << "x" << image.height << " image with "
      << image.pixels.size() << " bytes";
  Compressor c;
  if (setjmp(c.err.jump)) RUCHE_FAIL() << "JPEG encoding failed: " << c.err.message;
  jpeg_create_compress(&c.cinfo);
  c.created = true;
  jpeg_mem_dest(&c.cinfo, &c.buffer, &c.size);
  c.cinfo.image_width = static_cast<JDIMENSION>(image.width);
  c.cinfo.image_height = static_cast<JDIMENSION>(image.height);
  c.cinfo.input_components = image.channels;
  c.cinfo.in_color_space = image.channels == 1   ? JCS_GRAYSCALE
                           : image.channels == 3 ? JCS_RGB
                                                 : JCS_CMYK;
  jpeg_set_defaults(&c.cinfo);
  if (image.channels == 4 && cmyk_as_ycck) jpeg_set_colorspace(&c.cinfo, JCS_YCCK);
  jpeg_set_quality(&c.cinfo, quality, TRUE);
  jpeg_start_compress(&c.cinfo, TRUE);
  while (c.cinfo.next_scanline < c.cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(image.row(static_cast<int>(c.cinfo.next_scanline)));
    jpeg_write_scanlines(&c.cinfo, &row, 1);
  }
  jpeg_finish_compress(&c.cinfo);
  return std::vector<std::uint8_t>(c.buffer, c.buffer + c.size);
}

}  // namespace ruche
