// IDX files (MNIST, Fashion-MNIST), gzip-compressed or plain.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"

namespace ruche {

// One IDX file of unsigned bytes: its dimensions and data.
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> data;
};

// Reads an IDX file of unsigned bytes with `ndim` dimensions (gzip or plain). A missing,
// truncated or corrupt file throws ruche::Error naming the file and what was expected.
IdxArray read_idx_file(const std::string& path, int ndim);

// The whole file, gunzipped when it is gzip (zlib reads plain files as they are).
std::string read_maybe_gzip(const std::string& path);

// True when dir holds train-images-idx3-ubyte[.gz].
bool is_idx_dir(const std::string& dir);

// train-{images,labels} and, when present, t10k-{images,labels} of dir. Class names come from
// dir/labels.txt, else Fashion-MNIST's when the path names fashion, else digits.
DataSources load_idx_dir(const std::string& dir);

// Fashion-MNIST's ten class names.
const std::vector<std::string>& fashion_mnist_class_names();

}  // namespace ruche
