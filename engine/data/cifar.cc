#include "engine/data/cifar.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/data/in_memory.h"
#include "engine/error.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kPixels = 3 * 32 * 32;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RUCHE_REQUIRE(in.good()) << path << ": cannot open";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> read_names(const std::string& path) {
  std::vector<std::string> names;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

bool has(const std::string& dir, const std::string& name) {
  return fs::is_regular_file(fs::path(dir) / name);
}

DatasetPtr load_files(const std::string& dir, const std::vector<std::string>& files, CifarKind kind,
                      const std::vector<std::string>& names) {
  InMemoryData d;
  d.kind = kind == CifarKind::cifar10 ? "cifar10" : "cifar100";
  d.sample_shape = Shape{3, 32, 32};
  d.num_classes = kind == CifarKind::cifar10 ? 10 : 100;
  d.class_names = names;
  for (const std::string& name : files) {
    const std::string path = (fs::path(dir) / name).string();
    parse_cifar_batch(read_file(path), kind, path, &d.u8, &d.labels);
  }
  return std::make_shared<InMemoryDataset>(std::move(d), (fs::path(dir) / files[0]).string());
}

}  // namespace

const std::vector<std::string>& cifar10_class_names() {
  static const std::vector<std::string> names = {
      "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return names;
}

CifarKind cifar_kind(const std::string& dir) {
  if (has(dir, "data_batch_1.bin")) return CifarKind::cifar10;
  if (has(dir, "train.bin")) return CifarKind::cifar100;
  return CifarKind::none;
}

void parse_cifar_batch(const std::string& bytes, CifarKind kind, const std::string& where,
                       std::vector<std::uint8_t>* pixels, std::vector<std::int32_t>* labels) {
  const std::size_t label_bytes = kind == CifarKind::cifar10 ? 1 : 2;
  const std::size_t record = label_bytes + kPixels;
  const int classes = kind == CifarKind::cifar10 ? 10 : 100;
  RUCHE_REQUIRE(!bytes.empty() && bytes.size() % record == 0)
      << where << ": " << bytes.size() << " bytes, expected a whole number of "
      << (kind == CifarKind::cifar10 ? "CIFAR-10" : "CIFAR-100") << " records of " << record
      << " bytes (" << label_bytes << " label byte" << (label_bytes > 1 ? "s" : "")
      << " + 3x32x32 pixels)";
  const std::size_t n = bytes.size() / record;
  pixels->reserve(pixels->size() + n * kPixels);
  for (std::size_t i = 0; i < n; ++i) {
    const auto* r = reinterpret_cast<const std::uint8_t*>(bytes.data()) + i * record;
    const int label = r[label_bytes - 1];  // CIFAR-100: the fine label
    RUCHE_REQUIRE(label < classes)
        << where << ": record " << i << " has label " << label << ", expected 0.." << classes - 1;
    labels->push_back(label);
    pixels->insert(pixels->end(), r + label_bytes, r + record);
  }
}

DataSources load_cifar_dir(const std::string& dir) {
  const CifarKind kind = cifar_kind(dir);
  RUCHE_REQUIRE(kind != CifarKind::none)
      << dir << ": no CIFAR batches (data_batch_1.bin for CIFAR-10, train.bin for CIFAR-100)";
  DataSources s;
  if (kind == CifarKind::cifar10) {
    std::vector<std::string> names = read_names((fs::path(dir) / "batches.meta.txt").string());
    if (names.size() != 10) names = cifar10_class_names();
    std::vector<std::string> train;
    for (int i = 1; i <= 5; ++i) {
      const std::string name = "data_batch_" + std::to_string(i) + ".bin";
      RUCHE_REQUIRE(has(dir, name)) << dir << ": CIFAR-10 directory without " << name
                                    << " (expected data_batch_1.bin .. data_batch_5.bin)";
      train.push_back(name);
    }
    s.train = load_files(dir, train, kind, names);
    if (has(dir, "test_batch.bin")) s.test = load_files(dir, {"test_batch.bin"}, kind, names);
  } else {
    std::vector<std::string> names = read_names((fs::path(dir) / "fine_label_names.txt").string());
    if (names.size() != 100) names = numbered_class_names(100);
    s.train = load_files(dir, {"train.bin"}, kind, names);
    if (has(dir, "test.bin")) s.test = load_files(dir, {"test.bin"}, kind, names);
  }
  return s;
}

}  // namespace ruche
