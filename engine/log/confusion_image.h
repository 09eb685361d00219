// The confusion matrix as a picture (TensorBoard's Images tab at each validation): rows the true
// class, columns the predicted one, each cell shaded white to dark blue by the share of its row
// (recall), so a good model draws a dark diagonal whatever the class sizes.
#pragma once

#include <cstdint>
#include <string>

#include "engine/metrics/confusion_matrix.h"

namespace ruche {

struct PngImage {
  int width = 0, height = 0;
  std::string png;  // encoded RGB
};

// Cells of `cell_pixels` square (0: about 512 pixels across, at least 1 per class).
PngImage confusion_image(const ConfusionMatrix& confusion, int cell_pixels = 0);

}  // namespace ruche
