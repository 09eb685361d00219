// ImageFolder, as users keep ImageNet and as torchvision reads it:
//   ROOT/train/<class>/**/*.JPEG   the training split
//   ROOT/val/<class>/**/*.JPEG     the validation split (when present; else --val-fraction)
// Class indices are the sorted folder names of train/ (the wnids for ImageNet), samples are
// sorted by path within a class. Files that are not JPEG (.jpg, .jpeg, any case) are reported
// and skipped. Samples are decoded per read: read() gives the validation transform (resize,
// center crop), read_augmented() the training one (random-resized-crop, flip), both normalised.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/image_pipeline.h"

namespace ruche {

// True when root/train is a directory of class folders.
bool is_image_folder(const std::string& root);

// ROOT's train/ and (when present) val/ splits; no test split.
DataSources load_image_folder(const std::string& root, const ImageTransformOptions& options = {});

class ImageFolderDataset : public Dataset {
 public:
  // The JPEGs under dir/<class> for each of `classes` (label = position); a class folder that is
  // missing or holds no JPEG is an error when require_every_class (train/), skipped otherwise.
  ImageFolderDataset(const std::string& dir, std::vector<std::string> classes,
                     const ImageTransformOptions& options, bool require_every_class);

  std::int64_t size() const override { return static_cast<std::int64_t>(paths_.size()); }
  const Shape& sample_shape() const override { return shape_; }
  int num_classes() const override { return static_cast<int>(classes_.size()); }
  const std::vector<std::string>& class_names() const override { return classes_; }
  const std::string& kind() const override { return kind_; }
  std::int32_t label(std::int64_t index) const override {
    return labels_[static_cast<std::size_t>(index)];
  }
  void read(std::int64_t index, float* out) const override;
  bool transforms_itself() const override { return true; }
  void read_augmented(std::int64_t index, const RngStream& stream, float* out) const override;

  const std::string& path(std::int64_t index) const {
    return paths_[static_cast<std::size_t>(index)];
  }

 private:
  void decode(std::int64_t index, bool train, const RngStream& stream, float* out) const;

  std::vector<std::string> classes_;
  std::vector<std::string> paths_;
  std::vector<std::int32_t> labels_;
  ImageTransformOptions options_;
  Shape shape_;
  std::string kind_ = "imagefolder";
};

}  // namespace ruche
