// Weights in and out as .npz with PyTorch state_dict names and layouts, so a model moves to and
// from PyTorch with a strict load_state_dict.
#pragma once

#include <string>
#include <vector>

#include "engine/graph/net.h"

namespace ruche {

// Writes the net's state_dict (num_batches_tracked as int64, like PyTorch) atomically.
void save_weights(const Net& net, const std::string& path);

struct LoadReport {
  int loaded = 0;
  std::vector<std::string> missing;     // in the net, not in the file
  std::vector<std::string> unexpected;  // in the file, not in the net
  std::vector<std::string> mismatched;  // in both, with different shapes (partial: skipped)
};

// Loads weights into the net. Strict (partial = false): any missing, unexpected or mismatched
// name is an error listing them, and nothing is changed. Partial: loads what matches and
// reports the rest (fine-tuning a new head).
LoadReport load_weights(Net& net, const std::string& path, bool partial);

}  // namespace ruche
