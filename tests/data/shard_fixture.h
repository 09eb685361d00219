// A tiny ImageFolder written with libjpeg-turbo for the convert and shard
// reader tests: classes ant, bee, cow; one grayscale and one CMYK JPEG, and one
// file that is not a JPEG at all.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/data/jpeg.h"

namespace ruche::testing {

// A w x h image with `channels` channels: a gradient plus a per-image level, so
// images differ.
inline Image8 pattern_image(int w, int h, int channels, int level) {
  Image8 im;
  im.width = w;
  im.height = h;
  im.channels = channels;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < channels; ++c) {
        im.pixels.push_back(static_cast<std::uint8_t>((level * 37 + x * 5 + y * 3 + c * 60) % 256));
      }
    }
  }
  return im;
}

inline void write_jpeg(const std::string& path, const Image8& image) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  const std::vector<std::uint8_t> bytes = encode_jpeg(image, 90);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

struct TinyFolder {
  std::vector<std::string> classes{"ant", "bee", "cow"};
  int train_images = 0;  // readable ones
  int val_images = 0;
  std::string corrupt;  // the path of the unreadable file
};

// ROOT/train/<class>/... (per_class readable images each, mixed sizes,
// bee/gray.jpg is grayscale, cow/cmyk.jpg CMYK, ant/broken.jpg not a JPEG,
// ant/sub/deep.jpg one folder down) and ROOT/val/<class>/... (2 each).
inline TinyFolder make_tiny_folder(const std::string& root, int per_class) {
  TinyFolder f;
  int level = 0;
  for (std::size_t c = 0; c < f.classes.size(); ++c) {
    const std::string dir = root + "/train/" + f.classes[c];
    for (int i = 0; i < per_class; ++i) {
      const int w = 12 + 4 * (i % 3), h = 20 - 4 * (i % 2);
      std::string name = dir + "/img" + std::to_string(i) + ".JPEG";
      int channels = 3;
      if (c == 1 && i == 0) name = dir + "/gray.jpg", channels = 1;
      if (c == 2 && i == 0) name = dir + "/cmyk.jpg", channels = 4;
      if (c == 0 && i == 1) name = dir + "/sub/deep.jpg";
      write_jpeg(name, pattern_image(w, h, channels, level++));
      ++f.train_images;
    }
    for (int i = 0; i < 2; ++i) {
      write_jpeg(root + "/val/" + f.classes[c] + "/v" + std::to_string(i) + ".jpg",
                 pattern_image(16, 16, 3, level++));
      ++f.val_images;
    }
  }
  f.corrupt = root + "/train/ant/broken.jpg";
  std::ofstream(f.corrupt) << "this is not a JPEG file";
  return f;
}

}  // namespace ruche::testing
