// The learning-rate range test (Smith 2015, "Cyclical Learning Rates", and fastai's lr_find):
// train from fresh weights on the training split with a learning rate that grows exponentially
// each step, record the loss, and stop once it diverges. The suggestion is where the smoothed
// loss falls fastest. Nothing of a run is touched: no checkpoint, no run directory.
#pragma once

#include <string>
#include <vector>

#include "engine/train/trainer.h"

namespace ruche {

struct LrFindOptions {
  double start_lr = 1e-7;
  double end_lr = 10;
  int steps = 100;
  double smoothing = 0.98;    // the loss's exponential moving average (debiased), as fastai's
  double diverge_factor = 4;  // stop when the smoothed loss passes this times its best
};

struct LrFindPoint {
  double lr = 0, loss = 0, smoothed_loss = 0;
};

struct LrFindResult {
  std::vector<LrFindPoint> points;
  bool diverged = false;   // stopped early: the smoothed loss passed diverge_factor x best
  double min_loss_lr = 0;  // where the smoothed loss was lowest
  double steepest_lr = 0;  // where it fell fastest against log lr, before its minimum (0: none)
  double suggested_lr = 0;
  std::string suggested_by;  // "steepest descent" or "minimum / 10"
};

// Runs the test on `run`'s data (training split only), net or model, solver (optimizer type,
// momentum, decay, batch size, seed; its lr and schedule are replaced), init weights, device and
// threads. Prints one line per step when `verbose`.
LrFindResult lr_find(const TrainRun& run, const LrFindOptions& options, bool verbose = true);

// The suggestion from the points alone: the steepest descent of the smoothed loss against
// log(lr), looked for before the minimum and away from the noisy first tenth; when the curve
// offers none (fewer than 5 points before its minimum, or no fall), a tenth of the minimum's lr.
void suggest_lr(LrFindResult& result);

// {"start_lr", ..., "suggested_lr", "suggested_by", "points": [{"lr", "loss", "smoothed_loss"}]}
std::string lr_find_json(const LrFindResult& result, const LrFindOptions& options);
// lr,loss,smoothed_loss with a header.
std::string lr_find_csv(const LrFindResult& result);

}  // namespace ruche
