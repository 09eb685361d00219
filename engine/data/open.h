// open_dataset: the source a --data value names.
//   (empty)         Fashion-MNIST at kDefaultDataDir (Debian's dataset-fashion-mnist)
//   synthetic       random samples of the model's input shape (SyntheticOptions)
//   DIR             IDX files (MNIST, Fashion-MNIST) or CIFAR-10/100 binary batches
//   FILE.npz        arrays x, y (or x_train, y_train, x_test, y_test); --data-layout nchw|nhwc
//   ROOT            ImageFolder: ROOT/train/<class>/*.JPEG and ROOT/val/<class>/*.JPEG
//   shards          .tar shards are ruche train's (engine/data/index_shards.h); here an error
// Anything else is an error naming the formats ruche reads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/data/image_pipeline.h"
#include "engine/data/npz_source.h"
#include "engine/data/split.h"
#include "engine/data/synthetic.h"

namespace ruche {

inline constexpr const char* kDefaultDataDir = "/usr/share/datasets/fashion-mnist";

struct DataSpec {
  DataSpec(std::string data_value = "") : data(std::move(data_value)) {}  // NOLINT: implicit
  std::string data;                           // --data; empty: kDefaultDataDir
  std::string val_data;                       // --val-data: validation shards (train only)
  DataLayout layout = DataLayout::nchw;       // --data-layout (npz)
  SyntheticOptions synthetic;                 // for --data synthetic
  ImageTransformOptions image;                // ImageFolder: crop, resize, normalisation
  std::string default_dir = kDefaultDataDir;  // where an empty --data looks
  // The net's loss_param.ignore_label: an npz label of this value is no class (kept with its
  // sample, counted in no class), so Caffe's 255 or -1 can mark unlabelled samples.
  std::optional<std::int32_t> ignore_label;
};

DataSources open_dataset(const DataSpec& spec);
// open_dataset, then make_splits (a stratified val_fraction of train held out).
DataSplits open_splits(const DataSpec& spec, double val_fraction, std::uint64_t seed);

// "ruche reads: ..." (the formats); ends error messages about unreadable --data values.
const char* supported_data_formats();

}  // namespace ruche
