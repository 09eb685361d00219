#include "engine/data/transform.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "engine/error.h"
#include "engine/rng/philox.h"

namespace ruche {
namespace {

// Positions of the sample's stream: 0 crop rows, 1 crop columns, 2 flip, 3 erase or not, then
// four per erase attempt (area, aspect, top, left).
constexpr std::uint64_t kCropY = 0, kCropX = 1, kFlip = 2, kErase = 3, kEraseAttempts = 4;

// Uniform integer in [0, n).
int uniform_int(const RngStream& s, std::uint64_t position, int n) {
  return static_cast<int>(
      (static_cast<std::uint64_t>(rng_bits(s, position)) * static_cast<std::uint64_t>(n)) >> 32);
}

struct ChannelCounts {
  int channels;
  std::int64_t per_channel;
};

ChannelCounts channel_counts(const Shape& s) {
  if (s.ndim() == 3) return {static_cast<int>(s[0]), s[1] * s[2]};
  return {1, s.numel()};
}

}  // namespace

Normalization compute_normalization(const Dataset& d, std::int64_t max_samples) {
  const ChannelCounts cc = channel_counts(d.sample_shape());
  const std::int64_t n = std::min(d.size(), max_samples);
  std::vector<double> sum(static_cast<std::size_t>(cc.channels)), sq(sum.size()), count(sum.size());
  std::vector<float> x(static_cast<std::size_t>(d.sample_numel()));
  for (std::int64_t k = 0; k < n; ++k) {
    d.read(k * d.size() / n, x.data());
    for (int c = 0; c < cc.channels; ++c) {
      const float* p = x.data() + c * cc.per_channel;
      const auto ch = static_cast<std::size_t>(c);
      for (std::int64_t i = 0; i < cc.per_channel; ++i) {
        if (!std::isfinite(p[i])) continue;  // a corrupt sample must not poison every input
        sum[ch] += p[i];
        sq[ch] += static_cast<double>(p[i]) * p[i];
        count[ch] += 1;
      }
    }
  }
  Normalization norm;
  for (std::size_t c = 0; c < sum.size(); ++c) {
    const double mean = count[c] > 0 ? sum[c] / count[c] : 0.0;
    const double var = count[c] > 0 ? std::max(sq[c] / count[c] - mean * mean, 0.0) : 0.0;
    norm.mean.push_back(static_cast<float>(mean));
    norm.std.push_back(static_cast<float>(var > 0 ? std::sqrt(var) : 1.0));
  }
  return norm;
}

Normalization default_normalization(const Dataset& train) {
  const std::string& kind = train.kind();
  if (kind == "fashion-mnist") return {{0.2860f}, {0.3530f}};
  if (kind == "mnist") return {{0.1307f}, {0.3081f}};
  if (kind == "cifar10") return {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
  if (kind == "cifar100") return {{0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}};
  if (kind == "synthetic" || train.transforms_itself()) return {};  // normalised already
  return compute_normalization(train);
}

Transform::Transform(const Shape& sample_shape, TransformOptions options)
    : shape_(sample_shape),
      o_(std::move(options)) {
  const auto channels = static_cast<std::size_t>(channel_counts(shape_).channels);
  const Normalization& n = o_.norm;
  RUCHE_REQUIRE((n.mean.empty() || n.mean.size() == channels) &&
                (n.std.empty() || n.std.size() == channels))
      << "normalisation with " << n.mean.size() << " means and " << n.std.size()
      << " standard deviations for samples of shape " << shape_.str() << " (" << channels
      << " channels)";
  for (float s : n.std) RUCHE_REQUIRE(s > 0) << "normalisation std " << s << ", expected > 0";
  RUCHE_REQUIRE(n.mean_image.empty() ||
                static_cast<std::int64_t>(n.mean_image.size()) == shape_.numel())
      << "a mean image of " << n.mean_image.size() << " values for samples of shape "
      << shape_.str();
  RUCHE_REQUIRE(!n.reverse_channels || (shape_.ndim() == 3 && channels == 3))
      << "channel order BGR for samples of shape " << shape_.str() << ": expected 3 channels";
  if (shape_.ndim() == 3 && o_.augment.enabled) {
    padding_ = o_.augment.crop_padding >= 0 ? o_.augment.crop_padding : (shape_[1] >= 32 ? 4 : 2);
  }
  RUCHE_REQUIRE(o_.augment.erase_p >= 0 && o_.augment.erase_p <= 1)
      << "random erasing probability " << o_.augment.erase_p << ", expected [0, 1]";
}

bool Transform::augments() const {
  return shape_.ndim() == 3 && o_.augment.enabled &&
         (padding_ > 0 || o_.augment.hflip || o_.augment.erase_p > 0);
}

// Its own stream (layer 1): the augmentation's draws are the same with or without noise.
void Transform::add_noise(float* x, std::uint32_t epoch, std::uint64_t index) const {
  const NoiseOptions& n = o_.noise;
  if (n.kind == NoiseOptions::Kind::none) return;
  const RngStream s{o_.seed, RngPurpose::augment, epoch, static_cast<std::uint32_t>(index), 1};
  const std::int64_t numel = shape_.numel();
  for (std::int64_t i = 0; i < numel; ++i) {
    const auto at = static_cast<std::uint64_t>(i);
    if (n.kind == NoiseOptions::Kind::gaussian) {
      x[i] += n.amount * rng_normal(s, at);
    } else if (rng_uniform(s, at) < n.amount) {
      x[i] = 0.0f;
    }
  }
}

void Transform::normalize(float* x) const {
  const Normalization& n = o_.norm;
  const ChannelCounts cc = channel_counts(shape_);
  const std::int64_t numel = shape_.numel();
  if (n.rescale != 1) {
    for (std::int64_t i = 0; i < numel; ++i) x[i] *= n.rescale;
  }
  if (n.reverse_channels) std::swap_ranges(x, x + cc.per_channel, x + 2 * cc.per_channel);
  for (std::size_t i = 0; i < n.mean_image.size(); ++i) x[i] -= n.mean_image[i];
  if (n.mean.empty() && n.std.empty()) return;
  for (int c = 0; c < cc.channels; ++c) {
    const auto ch = static_cast<std::size_t>(c);
    const float mean = n.mean.empty() ? 0.0f : n.mean[ch];
    const float std = n.std.empty() ? 1.0f : n.std[ch];
    float* p = x + c * cc.per_channel;
    for (std::int64_t i = 0; i < cc.per_channel; ++i) p[i] = (p[i] - mean) / std;
  }
}

NoiseOptions parse_noise(const std::string& spec) {
  NoiseOptions n;
  if (spec.empty()) return n;
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  char* end = nullptr;
  const char* amount = colon == std::string::npos ? "" : spec.c_str() + colon + 1;
  n.amount = std::strtof(amount, &end);
  const bool number = end != amount && *end == '\0';
  if (kind == "gaussian" && number && n.amount >= 0) {
    n.kind = NoiseOptions::Kind::gaussian;
  } else if (kind == "mask" && number && n.amount >= 0 && n.amount < 1) {
    n.kind = NoiseOptions::Kind::mask;
  } else {
    RUCHE_FAIL() << "--noise " << spec << ": expected gaussian:S (S >= 0) or mask:P (P in [0, 1))";
  }
  return n;
}

void Transform::crop_flip(float* x, std::int64_t planes, float* scratch, std::uint32_t epoch,
                          std::uint64_t index) const {
  const RngStream s{o_.seed, RngPurpose::augment, epoch, static_cast<std::uint32_t>(index), 0};
  const int h = static_cast<int>(shape_[1]), w = static_cast<int>(shape_[2]);
  // Crop of the zero-padded image, then flip: out(y, x) = in(y + dy, x' + dx), x' mirrored.
  const int dy = padding_ > 0 ? uniform_int(s, kCropY, 2 * padding_ + 1) - padding_ : 0;
  const int dx = padding_ > 0 ? uniform_int(s, kCropX, 2 * padding_ + 1) - padding_ : 0;
  const bool flip = o_.augment.hflip && rng_uniform(s, kFlip) < 0.5f;
  if (dy == 0 && dx == 0 && !flip) return;
  const std::int64_t plane = static_cast<std::int64_t>(h) * w;
  std::copy_n(x, planes * plane, scratch);
  for (std::int64_t c = 0; c < planes; ++c) {
    const float* in = scratch + c * plane;
    float* out = x + c * plane;
    for (int y = 0; y < h; ++y) {
      const int sy = y + dy;
      for (int xo = 0; xo < w; ++xo) {
        const int sx = (flip ? w - 1 - xo : xo) + dx;
        out[y * w + xo] = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? in[sy * w + sx] : 0.0f;
      }
    }
  }
}

bool Transform::target_follows(const Shape& t) const {
  return shape_.ndim() == 3 && t.ndim() >= 2 && t[t.ndim() - 2] == shape_[1] &&
         t[t.ndim() - 1] == shape_[2];
}

void Transform::augment_target(float* target, const Shape& target_shape, float* scratch,
                               std::uint32_t epoch, std::uint64_t index) const {
  if (!augments() || !target_follows(target_shape)) return;
  crop_flip(target, target_shape.numel() / (shape_[1] * shape_[2]), scratch, epoch, index);
}

void Transform::apply(float* x, float* scratch, std::uint32_t epoch, std::uint64_t index,
                      float* target) const {
  const ChannelCounts cc = channel_counts(shape_);
  const RngStream s{o_.seed, RngPurpose::augment, epoch, static_cast<std::uint32_t>(index), 0};
  if (augments()) crop_flip(x, cc.channels, scratch, epoch, index);
  if (target) std::copy_n(x, shape_.numel(), target);
  add_noise(x, epoch, index);
  normalize(x);
  if (augments() && o_.augment.erase_p > 0 && rng_uniform(s, kErase) < o_.augment.erase_p) {
    const int h = static_cast<int>(shape_[1]), w = static_cast<int>(shape_[2]);
    const float log_lo = std::log(0.3f), log_hi = std::log(3.3f);
    for (int attempt = 0; attempt < 10; ++attempt) {
      const std::uint64_t at = kEraseAttempts + 4 * static_cast<std::uint64_t>(attempt);
      const float area = static_cast<float>(h * w) * (0.02f + 0.31f * rng_uniform(s, at));
      const float aspect = std::exp(log_lo + (log_hi - log_lo) * rng_uniform(s, at + 1));
      const int eh = static_cast<int>(std::lround(std::sqrt(area * aspect)));
      const int ew = static_cast<int>(std::lround(std::sqrt(area / aspect)));
      if (eh >= h || ew >= w || eh < 1 || ew < 1) continue;
      const int top = uniform_int(s, at + 2, h - eh + 1);
      const int left = uniform_int(s, at + 3, w - ew + 1);
      for (int c = 0; c < cc.channels; ++c)
        for (int y = top; y < top + eh; ++y)
          std::fill_n(x + c * cc.per_channel + y * w + left, ew, 0.0f);
      break;
    }
  }
}

}  // namespace ruche
