// From JPEG bytes to one normalised training or validation sample: decode (at the smallest DCT
// scale the crop allows), the ImageNet transforms (random-resized-crop + flip, or resize +
// center crop), normalise. The one entry point the ImageFolder and shard readers share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/rng/philox.h"

namespace ruche {

struct ImageTransformOptions {
  int crop = 224;                             // output side
  int resize = 256;                           // validation: short side before the center crop
  float scale_min = 0.08f, scale_max = 1.0f;  // random-resized-crop area fraction
  float ratio_min = 3.0f / 4.0f, ratio_max = 4.0f / 3.0f;
  bool flip = true;
  // The run's record (engine/data/preprocess.h): pixel / 255 * rescale, channels B, G, R when bgr,
  // then (v - mean) / std per channel of that order. ImageNet's statistics by default.
  float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  float rescale = 1.0f;
  bool bgr = false;
  bool dct_scaling = true;  // decode at a reduced DCT scale where the crop allows (off in tests)
  // Layout of a sample: CHW (false, what ruche's nets take) or HWC (true: NHWC batches for
  // consumers that want channels last, as tensor-core convolutions do).
  bool channels_last = false;
};

// One sample from JPEG bytes to normalised CHW floats (3 x crop x crop; HWC with
// options.channels_last): the training transform
// (random-resized-crop drawn from `stream` as torchvision's get_params, bilinear resize,
// horizontal flip with p 0.5 from `stream`, normalise) or the validation one (resize the short
// side to `resize`, center crop `crop`, normalise), decoding at the smallest DCT scale the crop
// allows. PNG bytes (told by their signature) are decoded whole (engine/data/png.h), then take the
// same transforms. Throws ruche::Error naming `what` when the bytes are not a readable JPEG or PNG.
void jpeg_to_sample(const std::uint8_t* data, std::size_t size, const std::string& what, bool train,
                    const ImageTransformOptions& options, const RngStream& stream, float* out);
// The same sample as 8-bit pixels before normalising (for a normalise done on the device).
void jpeg_to_sample(const std::uint8_t* data, std::size_t size, const std::string& what, bool train,
                    const ImageTransformOptions& options, const RngStream& stream,
                    std::uint8_t* out);

}  // namespace ruche
