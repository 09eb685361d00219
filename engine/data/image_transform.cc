#include "engine/data/image_transform.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"

namespace ruche {
namespace {

// Python's round(): halves to even (the default floating-point rounding mode).
int round_half_even(double x) { return static_cast<int>(std::nearbyint(x)); }

// PIL's fixed point for 8-bit resampling: weights in 22 fractional bits.
constexpr int kPrecisionBits = 32 - 8 - 2;

// One axis of a resize: for each output pixel the first input pixel it reads, how many, and
// their fixed-point weights (ksize per output pixel).
struct Coefficients {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<std::int32_t> weights;
};

// PIL's precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter, with the
// reads kept inside the pixels [floor(in0), ceil(in1)) the window touches.
Coefficients coefficients(int in_size, double in0, double in1, int out_size) {
  const double scale = (in1 - in0) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;  // the triangle's support is 1
  const int lo = std::max(0, static_cast<int>(std::floor(in0)));
  const int hi = std::min(in_size, static_cast<int>(std::ceil(in1)));
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<std::size_t>(out_size));
  c.count.resize(static_cast<std::size_t>(out_size));
  c.weights.assign(static_cast<std::size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(static_cast<std::size_t>(c.ksize));
  for (int o = 0; o < out_size; ++o) {
    const double center = in0 + (o + 0.5) * scale;
    const int xmin = std::max(static_cast<int>(std::floor(center - support + 0.5)), lo);
    const int xmax = std::min(static_cast<int>(std::floor(center + support + 0.5)), hi);
    const int n = std::max(0, std::min(xmax - xmin, c.ksize));
    double total = 0;
    for (int k = 0; k < n; ++k) {
      const double d = std::fabs((k + xmin - center + 0.5) / filter_scale);
      w[static_cast<std::size_t>(k)] = d < 1.0 ? 1.0 - d : 0.0;
      total += w[static_cast<std::size_t>(k)];
    }
    std::int32_t* fixed = c.weights.data() + static_cast<std::size_t>(o) * c.ksize;
    for (int k = 0; k < n; ++k) {
      const double v = total != 0 ? w[static_cast<std::size_t>(k)] / total : 0.0;
      fixed[k] = static_cast<std::int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits)
                                                 : 0.5 + v * (1 << kPrecisionBits));
    }
    c.first[static_cast<std::size_t>(o)] = xmin;
    c.count[static_cast<std::size_t>(o)] = n;
  }
  return c;
}

std::uint8_t clip8(std::int32_t v) {
  return static_cast<std::uint8_t>(std::clamp(v >> kPrecisionBits, 0, 255));
}

}  // namespace

CropBox random_resized_crop_box(int width, int height, const ImageTransformOptions& o,
                                const RngStream& stream) {
  const double area = static_cast<double>(width) * height;
  const double log_min = std::log(static_cast<double>(o.ratio_min));
  const double log_max = std::log(static_cast<double>(o.ratio_max));
  for (int t = 0; t < kCropTries; ++t) {
    const std::uint64_t p = 4 * static_cast<std::uint64_t>(t);
    const double target =
        area * (o.scale_min + (o.scale_max - o.scale_min) * double{rng_uniform(stream, p)});
    const double ratio = std::exp(log_min + (log_max - log_min) * rng_uniform(stream, p + 1));
    const int w = round_half_even(std::sqrt(target * ratio));
    const int h = round_half_even(std::sqrt(target / ratio));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      // torch.randint(0, n): uniform over [0, n).
      const int top = std::min(height - h, static_cast<int>(rng_uniform(stream, p + 2) *
                                                            static_cast<double>(height - h + 1)));
      const int left = std::min(width - w, static_cast<int>(rng_uniform(stream, p + 3) *
                                                            static_cast<double>(width - w + 1)));
      return {top, left, h, w};
    }
  }
  // The fallback: the whole image, cut to the nearest allowed aspect ratio, centred.
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < o.ratio_min) {
    h = round_half_even(w / static_cast<double>(o.ratio_min));
  } else if (in_ratio > o.ratio_max) {
    w = round_half_even(h * static_cast<double>(o.ratio_max));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

void resize_short_side(int width, int height, int short_side, int* out_width, int* out_height) {
  const bool wide = width > height;
  const int s = wide ? height : width, l = wide ? width : height;
  const int new_long = static_cast<int>(static_cast<double>(short_side) * l / s);
  *out_width = wide ? new_long : short_side;
  *out_height = wide ? short_side : new_long;
}

CropBox center_crop_box(int width, int height, int crop) {
  RUCHE_CHECK(crop <= width && crop <= height)
      << "center crop " << crop << " of a " << width << "x" << height << " image";
  return {round_half_even((height - crop) / 2.0), round_half_even((width - crop) / 2.0), crop,
          crop};
}

Image8 resize_bilinear(const Image8& src, double x0, double y0, double w, double h, int out_width,
                       int out_height, int src_left, int src_top) {
  RUCHE_CHECK(out_width > 0 && out_height > 0 && w > 0 && h > 0)
      << "resize of a " << w << "x" << h << " window to " << out_width << "x" << out_height;
  RUCHE_CHECK(std::floor(x0) >= src_left && std::floor(y0) >= src_top)
      << "resize window at (" << x0 << ", " << y0 << ") outside a part at (" << src_left << ", "
      << src_top << ")";
  const int ch = src.channels;
  // Coefficients in the whole image's coordinates (the same weights as resizing the whole),
  // then moved to the part's.
  Coefficients cx = coefficients(src_left + src.width, x0, x0 + w, out_width);
  Coefficients cy = coefficients(src_top + src.height, y0, y0 + h, out_height);
  for (int& f : cx.first) f -= src_left;
  for (int& f : cy.first) f -= src_top;
  // Horizontal pass over the rows the vertical pass reads, as PIL does.
  const int row_first = cy.first.front();
  const int row_last = cy.first.back() + cy.count.back();
  Image8 mid;
  mid.width = out_width;
  mid.height = row_last - row_first;
  mid.channels = ch;
  mid.pixels.resize(static_cast<std::size_t>(mid.width) * mid.height * ch);
  // Sums in int32 as PIL's: 255 * (2^22 + ksize) + 2^21 stays below 2^31 (weights are >= 0).
  constexpr std::int32_t kHalf = std::int32_t{1} << (kPrecisionBits - 1);
  for (int y = 0; y < mid.height; ++y) {
    const std::uint8_t* in = src.row(row_first + y);
    std::uint8_t* out = mid.row(y);
    for (int x = 0; x < out_width; ++x) {
      const std::int32_t* k = cx.weights.data() + static_cast<std::size_t>(x) * cx.ksize;
      const std::uint8_t* p =
          in + static_cast<std::size_t>(cx.first[static_cast<std::size_t>(x)]) * ch;
      const int n = cx.count[static_cast<std::size_t>(x)];
      if (ch == 3) {  // the common case: three running sums, one pass over the taps
        std::int32_t s0 = kHalf, s1 = kHalf, s2 = kHalf;
        for (int i = 0; i < n; ++i, p += 3) {
          s0 += p[0] * k[i];
          s1 += p[1] * k[i];
          s2 += p[2] * k[i];
        }
        out[x * 3] = clip8(s0);
        out[x * 3 + 1] = clip8(s1);
        out[x * 3 + 2] = clip8(s2);
        continue;
      }
      for (int c = 0; c < ch; ++c) {
        std::int32_t sum = kHalf;
        for (int i = 0; i < n; ++i) sum += p[i * ch + c] * k[i];
        out[x * ch + c] = clip8(sum);
      }
    }
  }
  Image8 dst;
  dst.width = out_width;
  dst.height = out_height;
  dst.channels = ch;
  dst.pixels.resize(static_cast<std::size_t>(out_width) * out_height * ch);
  const std::size_t stride = static_cast<std::size_t>(out_width) * ch;
  // Vertical pass a whole row at a time, tap by tap, so the inner loop vectorises.
  std::vector<std::int32_t> sums(stride);
  for (int y = 0; y < out_height; ++y) {
    const std::int32_t* k = cy.weights.data() + static_cast<std::size_t>(y) * cy.ksize;
    const std::uint8_t* in = mid.row(cy.first[static_cast<std::size_t>(y)] - row_first);
    const int n = cy.count[static_cast<std::size_t>(y)];
    std::fill(sums.begin(), sums.end(), kHalf);
    for (int i = 0; i < n; ++i) {
      const std::uint8_t* line = in + i * stride;
      const std::int32_t w = k[i];
      for (std::size_t x = 0; x < stride; ++x) sums[x] += line[x] * w;
    }
    std::uint8_t* out = dst.row(y);
    for (std::size_t x = 0; x < stride; ++x) out[x] = clip8(sums[x]);
  }
  return dst;
}

namespace {

// The side x side window of src at (left, top) to CHW, each pixel through convert(channel, value),
// channel counted in the output's order (B, G, R when bgr).
template <typename Out, typename Convert>
void window_to_chw(const Image8& src, int left, int top, int side, bool flip, Out* out,
                   bool channels_last, bool bgr, Convert convert) {
  const int c0 = bgr ? 2 : 0, c2 = bgr ? 0 : 2;  // the source channel of output channels 0 and 2
  RUCHE_CHECK(src.channels == 3 && left >= 0 && top >= 0 && left + side <= src.width &&
              top + side <= src.height)
      << "window " << side << " at (" << left << ", " << top << ") of a " << src.width << "x"
      << src.height << "x" << src.channels << " image";
  const std::size_t plane = static_cast<std::size_t>(side) * side;
  if (channels_last) {  // HWC: the pixels stay interleaved
    for (int y = 0; y < side; ++y) {
      const std::uint8_t* row = src.row(top + y) + static_cast<std::size_t>(left) * 3;
      Out* o = out + static_cast<std::size_t>(y) * side * 3;
      for (int x = 0; x < side; ++x) {
        const std::uint8_t* p = row + 3 * (flip ? side - 1 - x : x);
        o[3 * x] = convert(0, p[c0]);
        o[3 * x + 1] = convert(1, p[1]);
        o[3 * x + 2] = convert(2, p[c2]);
      }
    }
    return;
  }
  // One pass over the pixels, each row read once and written to the three planes.
  for (int y = 0; y < side; ++y) {
    const std::uint8_t* row = src.row(top + y) + static_cast<std::size_t>(left) * 3;
    Out* r = out + static_cast<std::size_t>(y) * side;
    Out* g = r + plane;
    Out* b = g + plane;
    for (int x = 0; x < side; ++x) {
      const std::uint8_t* p = row + 3 * (flip ? side - 1 - x : x);
      r[x] = convert(0, p[c0]);
      g[x] = convert(1, p[1]);
      b[x] = convert(2, p[c2]);
    }
  }
}

}  // namespace

void normalize_to_chw(const Image8& src, int left, int top, int side, bool flip,
                      const float mean[3], const float std[3], float* out, bool channels_last,
                      float rescale, bool bgr) {
  float scale[3], shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = rescale / (255.0f * std[c]);
    shift[c] = mean[c] / std[c];
  }
  window_to_chw(src, left, top, side, flip, out, channels_last, bgr,
                [&](int c, std::uint8_t v) { return v * scale[c] - shift[c]; });
}

void window_to_chw(const Image8& src, int left, int top, int side, bool flip, std::uint8_t* out,
                   bool channels_last, bool bgr) {
  window_to_chw(src, left, top, side, flip, out, channels_last, bgr,
                [](int, std::uint8_t v) { return v; });
}

int smallest_dct_scale(int size, int needed) {
  // libjpeg-turbo's 3/8 and 5/8..7/8 inverse DCTs are plain C and decode slower than its SIMD
  // 8/8 one (measured: 5/8 of a 1000x750 JPEG 4.1 ms, 8/8 3.7 ms, 4/8 2.9 ms): skip them.
  for (int s : {1, 2, 4}) {
    if (static_cast<long long>(size) * s / 8 >= needed) return s;
  }
  return 8;
}

}  // namespace ruche
