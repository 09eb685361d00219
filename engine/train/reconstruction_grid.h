// What a reconstruction run shows of its validation samples: the first few targets (the clean
// inputs, [0, 1]) beside the net's reconstructions and their absolute error, as a TensorBoard
// image ("val/reconstructions", each validation) and as RUN/reconstructions.npz, which `ruche
// plot` draws into RUN/reconstructions.png (tools/scripts/plot_run.py).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/batch_source.h"
#include "engine/graph/net.h"
#include "engine/log/confusion_image.h"

namespace ruche {

struct ReconstructionSamples {
  Shape sample;                       // [C, H, W]
  std::int64_t count = 0;             // samples held
  std::vector<float> target;          // count x sample: what the net should give back
  std::vector<float> reconstruction;  // count x sample: what it gave (sigmoid of BCE logits)
};

// The first `max_samples` samples of the loader's epoch 0 through the net in test phase (this
// rank's share; the caller restarts the loader before its next use).
ReconstructionSamples take_reconstructions(Net& net, BatchSource& loader, int max_samples = 8);

// One row per sample: target | reconstruction | |error| (gray for one channel, RGB for three;
// values clipped to [0, 1]), each tile scaled up to at least 56 pixels and 2 pixels apart.
PngImage reconstruction_grid(const ReconstructionSamples& samples);

// RUN/reconstructions.npz: target, reconstruction (f32 [count, C, H, W]) and step (i64 [1]).
void save_reconstructions(const std::string& path, const ReconstructionSamples& samples,
                          std::int64_t step);

}  // namespace ruche
