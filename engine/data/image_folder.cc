#include "engine/data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "engine/error.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

bool is_jpeg_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg";
}

// The sorted names of dir's subdirectories.
std::vector<std::string> class_folders(const fs::path& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (e.is_directory() && e.path().filename().string()[0] != '.') {
      names.push_back(e.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RUCHE_REQUIRE(in.good()) << path << ": cannot open";
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  RUCHE_REQUIRE(!in.bad()) << path << ": read error";
  return bytes;
}

}  // namespace

bool is_image_folder(const std::string& root) {
  std::error_code ec;
  const fs::path train = fs::path(root) / "train";
  if (!fs::is_directory(train, ec)) return false;
  for (const fs::directory_entry& e : fs::directory_iterator(train, ec)) {
    if (e.is_directory(ec)) return true;
  }
  return false;
}

ImageFolderDataset::ImageFolderDataset(const std::string& dir, std::vector<std::string> classes,
                                       const ImageTransformOptions& options,
                                       bool require_every_class)
    : classes_(std::move(classes)),
      options_(options),
      shape_{3, options.crop, options.crop} {
  std::int64_t skipped = 0;
  std::string skipped_example;
  for (std::size_t c = 0; c < classes_.size(); ++c) {
    const fs::path class_dir = fs::path(dir) / classes_[c];
    std::vector<std::string> files;
    if (fs::is_directory(class_dir)) {
      const auto walk_options = fs::directory_options::follow_directory_symlink;
      for (const fs::directory_entry& e :
           fs::recursive_directory_iterator(class_dir, walk_options)) {
        if (!e.is_regular_file() || e.path().filename().string()[0] == '.') continue;
        if (is_jpeg_name(e.path())) {
          files.push_back(e.path().string());
        } else if (skipped++ == 0) {
          skipped_example = e.path().string();
        }
      }
    }
    RUCHE_REQUIRE(!files.empty() || !require_every_class)
        << class_dir.string() << ": no JPEG files (.JPEG, .jpg, .jpeg) for class " << classes_[c];
    std::sort(files.begin(), files.end());
    for (std::string& f : files) {
      paths_.push_back(std::move(f));
      labels_.push_back(static_cast<std::int32_t>(c));
    }
  }
  RUCHE_REQUIRE(!paths_.empty()) << dir << ": no JPEG files in its class folders";
  if (skipped > 0) {
    std::fprintf(stderr, "ruche: warning: %s: skipped %lld files that are not JPEG (e.g. %s)\n",
                 dir.c_str(), static_cast<long long>(skipped), skipped_example.c_str());
  }
}

void ImageFolderDataset::decode(std::int64_t index, bool train, const RngStream& stream,
                                float* out) const {
  const std::string& file = path(index);
  const std::vector<std::uint8_t> bytes = read_bytes(file);
  try {
    jpeg_to_sample(bytes.data(), bytes.size(), file, train, options_, stream, out);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) +
                "; remove or replace it, or pack the folder with `ruche convert imagefolder`, "
                "which reports and skips unreadable images");
  }
}

void ImageFolderDataset::read(std::int64_t index, float* out) const {
  decode(index, false, RngStream{}, out);
}

void ImageFolderDataset::read_augmented(std::int64_t index, const RngStream& stream,
                                        float* out) const {
  decode(index, true, stream, out);
}

DataSources load_image_folder(const std::string& root, const ImageTransformOptions& options) {
  const fs::path train = fs::path(root) / "train", val = fs::path(root) / "val";
  std::vector<std::string> classes = class_folders(train);
  RUCHE_REQUIRE(!classes.empty()) << train.string() << ": no class folders";
  DataSources s;
  if (fs::is_directory(val)) {
    for (const std::string& name : class_folders(val)) {
      RUCHE_REQUIRE(std::binary_search(classes.begin(), classes.end(), name))
          << (val / name).string() << ": class " << name << " has no folder in " << train.string();
    }
    s.val = std::make_shared<ImageFolderDataset>(val.string(), classes, options, false);
  }
  s.train = std::make_shared<ImageFolderDataset>(train.string(), std::move(classes), options, true);
  return s;
}

}  // namespace ruche
