// jpeg_to_sample: choose the crop from the header, decode at the smallest DCT scale that keeps
// the crop at least `crop` pixels (or the short side at least `resize`), resample, flip,
// normalise.
#include "engine/data/image_pipeline.h"

#include <algorithm>
#include <utility>

#include "engine/data/image_transform.h"
#include "engine/data/jpeg.h"
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
  JpegInfo full;
  CropBox box;                // training: the crop in full-size pixels
  int resized_w = 0, resized_h = 0;  // validation: the size after Resize(resize)
  const Image8 image = decode_jpeg_rgb(data, size, what, [&](const JpegInfo& info) {
    full = info;
    if (train) {
      box = random_resized_crop_box(info.width, info.height, options, stream);
      return options.dct_scaling ? smallest_dct_scale(std::min(box.width, box.height), crop) : 8;
    }
    resize_short_side(info.width, info.height, options.resize, &resized_w, &resized_h);
    return options.dct_scaling
               ? smallest_dct_scale(std::min(info.width, info.height), options.resize)
               : 8;
  });
  if (train) {
    // The box in the decoded image's pixels (the same box when decoded at full size).
    const double fx = static_cast<double>(image.width) / full.width;
    const double fy = static_cast<double>(image.height) / full.height;
    Image8 sample = resize_bilinear(image, box.left * fx, box.top * fy, box.width * fx,
                                    box.height * fy, crop, crop);
    const bool flip = options.flip && rng_uniform(stream, kFlipPosition) < 0.5f;
    return {std::move(sample), 0, 0, flip};
  }
  Image8 resized = resize_bilinear(image, 0, 0, image.width, image.height, resized_w, resized_h);
  const CropBox center = center_crop_box(resized_w, resized_h, crop);
  return {std::move(resized), center.left, center.top, false};
}

}  // namespace

void jpeg_to_sample(const std::uint8_t* data, std::size_t size, const std::string& what,
                    bool train, const ImageTransformOptions& options, const RngStream& stream,
                    float* out) {
  const SampleWindow w = decode_window(data, size, what, train, options, stream);
  normalize_to_chw(w.image, w.left, w.top, options.crop, w.flip, options.mean, options.std, out);
}

void jpeg_to_sample(const std::uint8_t* data, std::size_t size, const std::string& what,
                    bool train, const ImageTransformOptions& options, const RngStream& stream,
                    std::uint8_t* out) {
  const SampleWindow w = decode_window(data, size, what, train, options, stream);
  window_to_chw(w.image, w.left, w.top, options.crop, w.flip, out);
}

}  // namespace ruche
