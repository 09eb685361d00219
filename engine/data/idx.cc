#include "engine/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/data/in_memory.h"
#include "engine/error.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

std::uint32_t big_endian_u32(const std::string& b, std::size_t at) {
  auto byte = [&](std::size_t i) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + i]));
  };
  return (byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3);
}

// dir/name.gz or dir/name, whichever exists; "" when neither does.
std::string find_member(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {name + ".gz", name}) {
    const fs::path p = fs::path(dir) / candidate;
    if (fs::is_regular_file(p)) return p.string();
  }
  return "";
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// One split: `prefix`-images-idx3-ubyte and `prefix`-labels-idx1-ubyte.
DatasetPtr load_split(const std::string& dir, const std::string& prefix, const std::string& kind,
                      const std::vector<std::string>& names) {
  const std::string images_name = prefix + "-images-idx3-ubyte";
  const std::string labels_name = prefix + "-labels-idx1-ubyte";
  const std::string images_path = find_member(dir, images_name);
  const std::string labels_path = find_member(dir, labels_name);
  if (images_path.empty() && labels_path.empty()) return nullptr;
  RUCHE_REQUIRE(!images_path.empty())
      << dir << ": has " << labels_name << " but no " << images_name << "[.gz]";
  RUCHE_REQUIRE(!labels_path.empty())
      << dir << ": has " << images_name << " but no " << labels_name << "[.gz]";
  IdxArray images = read_idx_file(images_path, 3);
  IdxArray labels = read_idx_file(labels_path, 1);
  RUCHE_REQUIRE(images.dims[0] == labels.dims[0])
      << labels_path << ": " << labels.dims[0] << " labels, expected " << images.dims[0]
      << " (one per image in " << images_path << ")";
  InMemoryData d;
  d.kind = kind;
  d.sample_shape = Shape{1, images.dims[1], images.dims[2]};
  d.u8 = std::move(images.data);
  d.labels.assign(labels.data.begin(), labels.data.end());
  d.class_names = names;
  d.num_classes = static_cast<int>(names.size());
  for (std::size_t i = 0; i < d.labels.size(); ++i) {
    RUCHE_REQUIRE(d.labels[i] < d.num_classes)
        << labels_path << ": label " << d.labels[i] << " at index " << i << ", expected 0.."
        << d.num_classes - 1;
  }
  return std::make_shared<InMemoryDataset>(std::move(d), images_path);
}

}  // namespace

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

std::string read_maybe_gzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  RUCHE_REQUIRE(f != nullptr) << path << ": cannot open";
  std::string bytes;
  char buffer[1 << 16];
  int got = 0;
  while ((got = gzread(f, buffer, sizeof(buffer))) > 0)
    bytes.append(buffer, static_cast<std::size_t>(got));
  int err = Z_OK;
  const std::string message = gzerror(f, &err);
  gzclose(f);
  RUCHE_REQUIRE(got == 0 && err == Z_OK)
      << path << ": corrupt or truncated gzip data (" << message << ")";
  return bytes;
}

IdxArray read_idx_file(const std::string& path, int ndim) {
  const std::string b = read_maybe_gzip(path);
  const std::uint32_t expected_magic = 0x00000800u | static_cast<std::uint32_t>(ndim);
  const auto hex = [](std::uint32_t v) {
    char s[16];
    std::snprintf(s, sizeof(s), "0x%08x", v);
    return std::string(s);
  };
  RUCHE_REQUIRE(b.size() >= 4) << path << ": truncated: " << b.size()
                               << " bytes, expected an IDX header (magic " << hex(expected_magic)
                               << ")";
  const std::uint32_t magic = big_endian_u32(b, 0);
  RUCHE_REQUIRE(magic == expected_magic)
      << path << ": magic number " << hex(magic) << ", expected " << hex(expected_magic)
      << " (IDX, unsigned bytes, " << ndim << " dimension" << (ndim == 1 ? "" : "s") << ")";
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndim);
  RUCHE_REQUIRE(b.size() >= header) << path << ": truncated: " << b.size() << " bytes, expected a "
                                    << header << "-byte IDX header";
  IdxArray a;
  std::size_t count = 1;
  bool overflow = false;  // dims of 2^31 x 2^31 x 4 multiply to 0 modulo 2^64 (tests/fuzz)
  std::string dims_text;
  for (int i = 0; i < ndim; ++i) {
    const std::uint32_t d = big_endian_u32(b, 4 + 4 * static_cast<std::size_t>(i));
    a.dims.push_back(d);
    overflow = overflow || __builtin_mul_overflow(count, std::size_t{d}, &count);
    dims_text += (i ? " x " : "") + std::to_string(d);
  }
  RUCHE_REQUIRE(!overflow) << path << ": header says " << dims_text
                           << ": more bytes than a file can hold";
  RUCHE_REQUIRE(b.size() - header == count)
      << path << ": " << (b.size() - header < count ? "truncated" : "trailing bytes")
      << ": header says " << dims_text << " = " << count << " bytes of data, the file has "
      << b.size() - header;
  a.data.assign(b.begin() + static_cast<std::ptrdiff_t>(header), b.end());
  return a;
}

bool is_idx_dir(const std::string& dir) {
  return !find_member(dir, "train-images-idx3-ubyte").empty();
}

DataSources load_idx_dir(const std::string& dir) {
  std::string lower = dir;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const bool fashion = lower.find("fashion") != std::string::npos;
  const std::string kind = fashion ? "fashion-mnist" : "mnist";
  std::vector<std::string> names = read_lines((fs::path(dir) / "labels.txt").string());
  if (names.empty()) names = fashion ? fashion_mnist_class_names() : numbered_class_names(10);
  DataSources s;
  s.train = load_split(dir, "train", kind, names);
  RUCHE_REQUIRE(s.train != nullptr) << dir << ": no train-images-idx3-ubyte[.gz]";
  s.test = load_split(dir, "t10k", kind, names);
  RUCHE_REQUIRE(!s.test || s.test->sample_shape() == s.train->sample_shape())
      << dir << ": test images are " << s.test->sample_shape().str() << ", training images "
      << s.train->sample_shape().str();
  return s;
}

}  // namespace ruche
