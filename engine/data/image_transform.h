// The pieces of the ImageNet transforms, each as torchvision does it on PIL images:
// RandomResizedCrop's box (get_params), PIL's bilinear resize (antialiased when shrinking),
// Resize(short side) and CenterCrop's geometry, flip and normalise into CHW floats.
#pragma once

#include "engine/data/image_pipeline.h"
#include "engine/data/jpeg.h"

namespace ruche {

// A box of an image in pixels: torchvision's (i, j, h, w).
struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
};

// Positions of a sample's stream: 4 per try (area, log ratio, top, left), then the flip.
inline constexpr int kCropTries = 10;
inline constexpr std::uint64_t kFlipPosition = 4 * kCropTries;

// torchvision's RandomResizedCrop.get_params on a width x height image: up to 10 tries of an
// area fraction uniform in [scale_min, scale_max) and a log-uniform aspect ratio, else the
// whole image clamped to the ratio range, centred.
CropBox random_resized_crop_box(int width, int height, const ImageTransformOptions& options,
                                const RngStream& stream);

// Resize(short_side)'s output size: the short side becomes short_side, the long one
// int(short_side * long / short).
void resize_short_side(int width, int height, int short_side, int* out_width, int* out_height);

// CenterCrop(crop)'s box on a width x height image (offsets rounded half to even, as Python).
CropBox center_crop_box(int width, int height, int crop);

// PIL's Image.resize(BILINEAR) of the window [x0, x0 + w) x [y0, y0 + h) of src (fractional
// coordinates allowed; the filter never reads outside the pixels the window touches, so an
// integer window is crop-then-resize) to out_width x out_height: a triangle filter whose support
// grows with the shrink factor, horizontal pass then vertical, each rounded to 8 bits as PIL.
// src may be a part of a larger image whose pixel (src_left, src_top) is src's (0, 0): the window
// is then in the larger image's coordinates and must lie within the part.
Image8 resize_bilinear(const Image8& src, double x0, double y0, double w, double h, int out_width,
                       int out_height, int src_left = 0, int src_top = 0);

// The side x side window of RGB src at (left, top) to normalised CHW floats (HWC when
// channels_last), mirrored left-right when flip: (pixel * rescale / 255 - mean) / std, ToTensor
// then Normalize; with bgr the channels come out B, G, R (mean and std in that order).
void normalize_to_chw(const Image8& src, int left, int top, int side, bool flip,
                      const float mean[3], const float std[3], float* out,
                      bool channels_last = false, float rescale = 1.0f, bool bgr = false);
// The same window as 8-bit pixels, not normalised: for a normalise done on the device.
void window_to_chw(const Image8& src, int left, int top, int side, bool flip, std::uint8_t* out,
                   bool channels_last = false, bool bgr = false);

// The smallest DCT scale s of 1, 2 and 4 eighths (the ones that decode faster than full size)
// at which a region of `size` full-size pixels still has at least `needed` pixels; else 8.
int smallest_dct_scale(int size, int needed);

}  // namespace ruche
