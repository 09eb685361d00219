#include "engine/log/progress.h"

#include <cmath>
#include <cstdio>

namespace ruche {

std::string human_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  const long long s = std::llround(seconds);
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s / 60 % 60);
  }
  return buf;
}

std::string progress_line(const Progress& p) {
  char buf[1024];  // room for the losses: each name is cut at 64 characters, at most 8 of them
  int n = 0;
  if (p.epochs > 0) {
    n += std::snprintf(buf + n, sizeof buf - n, "epoch %d/%d  ", p.epoch, p.epochs);
  } else {
    n += std::snprintf(buf + n, sizeof buf - n, "epoch %d  ", p.epoch);
  }
  n += std::snprintf(buf + n, sizeof buf - n, "step %lld/%lld  loss %.4f  ",
                     static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss);
  for (std::size_t i = 0; i < p.losses.size() && i < 8; ++i) {
    n -= i == 0 ? 2 : 0;  // "(" right after the total
    n += std::snprintf(buf + n, sizeof buf - n, "%s%.64s %.4f%s", i == 0 ? " (" : "",
                       p.losses[i].first.c_str(), p.losses[i].second,
                       i + 1 == p.losses.size() || i == 7 ? ")  " : "  ");
  }
  if (p.regression) {
    n += std::snprintf(buf + n, sizeof buf - n, "mse %.4g  ", p.mse);
    if (!std::isnan(p.psnr)) n += std::snprintf(buf + n, sizeof buf - n, "psnr %.2f dB  ", p.psnr);
    if (p.multilabel) {
      n += std::snprintf(buf + n, sizeof buf - n, "acc@0.5 %.2f%%  ", 100.0 * p.accuracy);
    }
  } else {
    n += std::snprintf(buf + n, sizeof buf - n, "acc %.2f%%  ", 100.0 * p.accuracy);
  }
  n += std::snprintf(buf + n, sizeof buf - n, "lr %.4g  %.0f img/s", p.lr, p.images_per_second);
  if (p.eta_seconds >= 0) {
    n += std::snprintf(buf + n, sizeof buf - n, "  ETA %s", human_duration(p.eta_seconds).c_str());
  }
  if (p.checkpoint_every > 0) {
    std::snprintf(buf + n, sizeof buf - n, "  ckpt/%lld %.1f%%",
                  static_cast<long long>(p.checkpoint_every), p.checkpoint_cost_percent);
  }
  return buf;
}

}  // namespace ruche
