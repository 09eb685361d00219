// image_probe JPEG val|train SEED INDEX OUT.f32: our sample of one JPEG (no DCT scaling), as
// raw float32 CHW for tests/data/image_reference.py to compare with PIL + torchvision. For
// train it prints the crop box and flip it drew: "top left height width flip".
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/data/image_pipeline.h"
#include "engine/data/image_transform.h"
#include "engine/data/jpeg.h"
#include "engine/error.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: image_probe JPEG val|train SEED INDEX OUT.f32\n");
    return 2;
  }
  using namespace ruche;
  try {
    std::ifstream in(argv[1], std::ios::binary);
    const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                          std::istreambuf_iterator<char>());
    const bool train = std::string(argv[2]) == "train";
    const RngStream stream{std::stoull(argv[3]), RngPurpose::augment, 0,
                           static_cast<std::uint32_t>(std::stoul(argv[4])), 0};
    ImageTransformOptions options;
    options.dct_scaling = false;
    std::vector<float> out(3 * static_cast<std::size_t>(options.crop) * options.crop);
    jpeg_to_sample(bytes.data(), bytes.size(), argv[1], train, options, stream, out.data());
    std::ofstream(argv[5], std::ios::binary)
        .write(reinterpret_cast<const char*>(out.data()),
               static_cast<std::streamsize>(out.size() * sizeof(float)));
    if (train) {
      const JpegInfo info = jpeg_info(bytes.data(), bytes.size(), argv[1]);
      const CropBox b = random_resized_crop_box(info.width, info.height, options, stream);
      std::printf("%d %d %d %d %d\n", b.top, b.left, b.height, b.width,
                  rng_uniform(stream, kFlipPosition) < 0.5f ? 1 : 0);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "image_probe: %s\n", e.what());
    return 2;
  }
  return 0;
}
