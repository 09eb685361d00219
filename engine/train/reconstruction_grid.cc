#include "engine/train/reconstruction_grid.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/log/png.h"
#include "engine/tensor/npz.h"
#include "engine/train/task.h"

namespace ruche {

ReconstructionSamples take_reconstructions(Net& net, BatchSource& loader, int max_samples) {
  ReconstructionSamples s;
  StepContext ctx;
  ctx.phase = Phase::test;
  loader.start_epoch(0);
  const std::int64_t n = loader.next(net.input(), net.labels());
  if (n == 0) return s;
  net.forward(ctx);
  s.count = std::min<std::int64_t>(n, max_samples);
  const Tensor y = net.labels().narrow(0, 0, s.count).to(Device::cpu());
  const Tensor p = net.output().narrow(0, 0, s.count).to(Device::cpu());
  RUCHE_CHECK(y.dtype() == DType::f32 && y.numel() == p.numel())
      << "reconstructions: the target and the prediction differ in size";
  for (int i = 1; i < y.ndim(); ++i) s.sample.push_back(y.size(i));
  s.target = y.to_vector<float>();
  s.reconstruction = p.to_vector<float>();
  if (loss_type(net.param()) == "SigmoidCrossEntropyLoss") {  // logits: the image is the sigmoid
    for (float& v : s.reconstruction) v = 1.0f / (1.0f + std::exp(-v));
  }
  return s;
}

PngImage reconstruction_grid(const ReconstructionSamples& s) {
  PngImage image;
  if (s.count == 0) return image;
  const bool spatial = s.sample.ndim() == 3;
  const int c = spatial ? static_cast<int>(s.sample[0]) : 1;
  const int h = spatial ? static_cast<int>(s.sample[1]) : 1;
  const int w = spatial ? static_cast<int>(s.sample[2]) : static_cast<int>(s.sample.numel());
  const int scale = std::max(1, (56 + h - 1) / h);
  const int gap = 2, tile_w = w * scale, tile_h = h * scale;
  image.width = 3 * tile_w + 4 * gap;
  image.height = static_cast<int>(s.count) * (tile_h + gap) + gap;
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(image.width) * image.height * 3, 255);
  const std::int64_t numel = s.sample.numel();
  auto byte = [](float v) {
    return static_cast<std::uint8_t>(std::lround(255.0f * std::clamp(v, 0.0f, 1.0f)));
  };
  for (std::int64_t i = 0; i < s.count; ++i) {
    const float* t = s.target.data() + i * numel;
    const float* r = s.reconstruction.data() + i * numel;
    for (int col = 0; col < 3; ++col) {
      for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
          float px[3];
          for (int k = 0; k < 3; ++k) {
            const int ch = c == 3 ? k : 0;
            const std::int64_t at = (static_cast<std::int64_t>(ch) * h + y) * w + x;
            px[k] = col == 0 ? t[at] : col == 1 ? r[at] : std::abs(r[at] - t[at]);
          }
          for (int dy = 0; dy < scale; ++dy) {
            for (int dx = 0; dx < scale; ++dx) {
              const int oy = gap + static_cast<int>(i) * (tile_h + gap) + y * scale + dy;
              const int ox = gap + col * (tile_w + gap) + x * scale + dx;
              std::uint8_t* o = rgb.data() + (static_cast<std::size_t>(oy) * image.width + ox) * 3;
              for (int k = 0; k < 3; ++k) o[k] = byte(px[k]);
            }
          }
        }
      }
    }
  }
  image.png = encode_png_rgb(image.width, image.height, rgb);
  return image;
}

void save_reconstructions(const std::string& path, const ReconstructionSamples& s,
                          std::int64_t step) {
  Shape shape{s.count};
  for (std::int64_t d : s.sample) shape.push_back(d);
  save_npz(path, {{"target", Tensor::from_vector(s.target, shape)},
                  {"reconstruction", Tensor::from_vector(s.reconstruction, shape)},
                  {"step", Tensor::from_vector(std::vector<std::int64_t>{step}, Shape{1})}});
}

}  // namespace ruche
