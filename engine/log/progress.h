// The progress line a run prints per log interval, and durations for people.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ruche {

struct Progress {
  int epoch = 0, epochs = 0;         // 1-based epoch of how many (0: unknown)
  std::int64_t step = 0, steps = 0;  // global step of how many
  double loss = 0, accuracy = 0;     // accuracy in [0, 1]
  // A net with several loss layers: each one's mean (unweighted) by layer name; `loss` is their
  // weighted sum. Empty for one loss.
  std::vector<std::pair<std::string, double>> losses;
  // Regression and reconstruction: the line shows MSE and PSNR (peak 1; reconstruction only: NaN
  // leaves it out) instead of accuracy; multi-label regression also the per-element accuracy.
  bool regression = false;
  bool multilabel = false;
  double mse = 0, psnr = 0;
  double lr = 0;
  double images_per_second = 0;
  double eta_seconds = -1;  // < 0: unknown
  // --checkpoint-every-steps auto: the cadence and its measured cost in % (0: none chosen)
  std::int64_t checkpoint_every = 0;
  double checkpoint_cost_percent = 0;
};

// "epoch 2/10  step 1200/9380  loss 0.3412  acc 87.50%  lr 0.01  2431 img/s  ETA 3m12s"
// (with an auto cadence: "...  ETA 3m12s  ckpt/40 1.9%")
// Several losses: "...  loss 1.8000 (loss1/loss 0.7000  loss2/loss 0.6000  loss3/loss 0.5000)  acc"
// "epoch 2/10  step 1200/9380  loss 0.0121  mse 0.0121  psnr 19.17 dB  lr 0.01  ..." (regression)
std::string progress_line(const Progress& p);
// "3m12s", "1h04m", "42s"
std::string human_duration(double seconds);

}  // namespace ruche
