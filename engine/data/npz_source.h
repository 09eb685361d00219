// npz datasets: arrays x (float32 or uint8, [N, ...]) and y (integer class labels, [N], or
// float32 regression targets [N] or [N, ...]: Dataset::target_shape), or
// x_train/y_train with x_test/y_test (Keras's layout). Images are stored NCHW or NHWC
// (--data-layout); NHWC is transposed to NCHW on load. [N, H, W] gets one channel.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/data/dataset.h"

namespace ruche {

enum class DataLayout { nchw, nhwc };

// "nchw" or "nhwc"; anything else is an error naming both.
DataLayout parse_data_layout(const std::string& text);

// ignore_label: a label value that is no class (DataSpec::ignore_label).
DataSources load_npz_dataset(const std::string& path, DataLayout layout,
                             std::optional<std::int32_t> ignore_label = std::nullopt);

}  // namespace ruche
