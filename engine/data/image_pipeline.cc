// jpeg_to_sample: PNG bytes are decoded whole and take the same transforms; for JPEG,
// choose the crop from the header, decode at the smallest DCT scale that keeps
// the crop at least `crop` pixels (or the short side at least `resize`), decoding only the crop's
// rows and columns in training, resample, flip, normalise.
#include "engine/data/image_pipeline.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/data/image_transform.h"
#include "engine/data/jpeg.h"
#include "engine/data/png.h"
#include "engine/error.h"

namespace ruche {

namespace {

// The transformed image and the crop x crop window of it a sample is made of.
struct SampleWindow {
  Image8 image;
  int left = 0, top = 0;
  bool flip = false;
};

SampleWindow decode_window(const std::uint8_t* data, std::size_t size, const std::string& what,
                           bool train, const ImageTransformOptions& options,
                           const RngStream& stream) {
  RUCHE_CHECK(options.crop > 0 && options.resize >= options.crop)
      << "crop " << options.crop << ", resize " << options.resize;
  const int crop = options.crop;
  if (is_png(data, size)) {  // decoded whole, then the same transforms as a full-size JPEG
    const Image8 image = decode_png_rgb(data, size, what);
    if (train) {
      const CropBox b = random_resized_crop_box(image.width, image.height, options, stream);
      Image8 sample = resize_bilinear(image, b.left, b.top, b.width, b.height, crop, crop);
      const bool flip = options.flip && rng_uniform(stream, kFlipPosition) < 0.5f;
      return {std::move(sample), 0, 0, flip};
    }
    int rw = 0, rh = 0;
    resize_short_side(image.width, image.height, options.resize, &rw, &rh);
    Image8 resized = resize_bilinear(image, 0, 0, image.width, image.height, rw, rh);
    const CropBox center = center_crop_box(rw, rh, crop);
    return {std::move(resized), center.left, center.top, false};
  }
  JpegInfo full;
  CropBox box;                       // training: the crop in full-size pixels
  int resized_w = 0, resized_h = 0;  // validation: the size after Resize(resize)
  const auto choose_scale = [&](const JpegInfo& info) {
    full = info;
    if (train) {
      box = random_resized_crop_box(info.width, info.height, options, stream);
      return options.dct_scaling ? smallest_dct_scale(std::min(box.width, box.height), crop) : 8;
    }
    resize_short_side(info.width, info.height, options.resize, &resized_w, &resized_h);
    return options.dct_scaling
               ? smallest_dct_scale(std::min(info.width, info.height), options.resize)
               : 8;
  };
  // Training reads only the box's pixels (all its filter touches): decode just those.
  double x0 = 0, y0 = 0, w = 0, h = 0;  // the box in the decoded image's pixels
  const auto choose_window = [&](int scaled_width, int scaled_height) {
    const double fx = static_cast<double>(scaled_width) / full.width;
    const double fy = static_cast<double>(scaled_height) / full.height;
    x0 = box.left * fx, y0 = box.top * fy, w = box.width * fx, h = box.height * fy;
    const int left = std::max(0, static_cast<int>(std::floor(x0)));
    const int top = std::max(0, static_cast<int>(std::floor(y0)));
    const int right = std::min(scaled_width, static_cast<int>(std::ceil(x0 + w)));
    const int bottom = std::min(scaled_height, static_cast<int>(std::ceil(y0 + h)));
    return PixelWindow{left, top, right - left, bottom - top};
  };
  if (train) {
    const DecodedWindow part =
        decode_jpeg_rgb_window(data, size, what, choose_scale, choose_window);
    Image8 sample = resize_bilinear(part.image, x0, y0, w, h, crop, crop, part.left, part.top);
    const bool flip = options.flip && rng_uniform(stream, kFlipPosition) < 0.5f;
    return {std::move(sample), 0, 0, flip};
  }
  const Image8 image = decode_jpeg_rgb(data, size, what, choose_scale);
  Image8 resized = resize_bilinear(image, 0, 0, image.width, image.height, resized_w, resized_h);
  const CropBox center = center_crop_box(resized_w, resized_h, crop);
  return {std::move(resized), center.left, center.top, false};
}

}  // namespace

void jpeg_to_sample(const std::uint8_t* data, std::size_t size, const std::string& what, bool train,
                    const ImageTransformOptions& options, const RngStream& stream, float* out) {
  const SampleWindow w = decode_window(data, size, what, train, options, stream);
  normalize_to_chw(w.image, w.left, w.top, options.crop, w.flip, options.mean, options.std, out,
                   options.channels_last, options.rescale, options.bgr);
}

void jpeg_to_sample(const std::uint8_t* data, std::size_t size, const std::string& what, bool train,
                    const ImageTransformOptions& options, const RngStream& stream,
                    std::uint8_t* out) {
  const SampleWindow w = decode_window(data, size, what, train, options, stream);
  window_to_chw(w.image, w.left, w.top, options.crop, w.flip, out, options.channels_last,
                options.bgr);
}

}  // namespace ruche
