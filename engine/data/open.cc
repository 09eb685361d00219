#include "engine/data/open.h"

#include <filesystem>
#include <memory>

#include "engine/data/cifar.h"
#include "engine/data/idx.h"
#include "engine/data/image_folder.h"
#include "engine/data/index_shards.h"
#include "engine/error.h"

namespace ruche {

namespace fs = std::filesystem;

const char* supported_data_formats() {
  return "ruche reads a directory of IDX files (MNIST, Fashion-MNIST: "
         "train-images-idx3-ubyte[.gz], "
         "...), a directory of CIFAR-10/100 binary batches (data_batch_1.bin .. test_batch.bin, "
         "or train.bin, test.bin), an .npz file (x float32 [N, ...], y int [N]), an ImageFolder "
         "(ROOT/train/<class>/*.JPEG, ROOT/val/<class>/*.JPEG), `synthetic`, or (ruche train) "
         "WebDataset .tar shards: a directory of them, one .tar or a pattern such as "
         "'train-{000000..000146}.tar', each sample a .jpg/.jpeg/.png with a .cls, .json "
         "(\"label\") or .txt label, from `ruche convert` or any other writer (indexed by "
         "`ruche index DIR` or on first use; --val-data names validation shards)";
}

DataSources open_dataset(const DataSpec& spec) {
  if (spec.data == "synthetic") {
    DataSources s;
    s.train = std::make_shared<SyntheticDataset>(spec.synthetic);
    return s;
  }
  const std::string path = spec.data.empty() ? spec.default_dir : spec.data;
  const auto normal = [](const std::string& p) {
    std::string n = fs::path(p).lexically_normal().string();
    while (n.size() > 1 && n.back() == '/') n.pop_back();
    return n;
  };
  const bool is_default = normal(path) == normal(spec.default_dir);
  if (is_default && !is_idx_dir(path)) {
    RUCHE_FAIL() << "Fashion-MNIST not found at " << spec.default_dir
                 << ": install it with `make deps` (Debian package dataset-fashion-mnist) or pass "
                    "--data DIR";
  }
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  const bool directory = fs::is_directory(status);
  if (directory) {
    if (is_idx_dir(path)) return load_idx_dir(path);
    if (cifar_kind(path) != CifarKind::none) return load_cifar_dir(path);
    if (is_image_folder(path)) return load_image_folder(path, spec.image);
  }
  if (names_shards(path)) {
    RUCHE_FAIL() << "--data " << path << ": .tar shards are read by `ruche train` (and its "
                 << "validation), not by this command";
  }
  RUCHE_REQUIRE(fs::exists(status)) << "--data " << path << ": no such file or directory";
  if (directory) {
  } else if (fs::path(path).extension() == ".npz") {
    return load_npz_dataset(path, spec.layout, spec.ignore_label);
  }
  RUCHE_FAIL() << "--data " << path << ": not a dataset ruche reads; " << supported_data_formats();
}

DataSplits open_splits(const DataSpec& spec, double val_fraction, std::uint64_t seed) {
  return make_splits(open_dataset(spec), val_fraction, seed);
}

}  // namespace ruche
