#include "engine/train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "engine/layers/softmax_loss_layer.h"

namespace ruche {

const Tensor& net_probabilities(const Net& net) {
  for (const auto& layer : net.layers()) {
    if (const auto* loss = dynamic_cast<const SoftmaxWithLossLayer*>(layer.get())) {
      return loss->probabilities();
    }
  }
  RUCHE_FAIL() << "the net has no SoftmaxWithLoss layer, so it gives no class probabilities";
}

double evaluate(Net& net, BatchSource& loader, EvalAccumulator& acc, std::uint32_t epoch) {
  StepContext ctx;
  ctx.phase = Phase::test;
  const Tensor& probs = net_probabilities(net);
  double nll = 0;
  std::int64_t seen = 0;
  loader.start_epoch(epoch);
  while (const std::int64_t n = loader.next(net.input(), net.labels())) {
    net.forward(ctx);
    // A kept last batch is partial: only its first n rows are samples.
    const Tensor p = probs.narrow(0, 0, n).to(Device::cpu());
    const Tensor y = net.labels().narrow(0, 0, n).to(Device::cpu());
    acc.add(p, y);
    const float* pp = p.data<float>();
    const std::int32_t* py = y.data<std::int32_t>();
    const std::int64_t classes = p.size(1);
    for (std::int64_t i = 0; i < n; ++i) {
      nll -= std::log(std::max(pp[i * classes + py[i]], 1e-12f));
    }
    seen += n;
  }
  return seen ? nll / static_cast<double>(seen) : 0.0;
}

void tally_regression(Net& net, std::int64_t n, RegressionTally& tally) {
  const Tensor p = net.output().narrow(0, 0, n).to(Device::cpu());
  const Tensor y = net.labels().narrow(0, 0, n).to(Device::cpu());
  tally.add(p.data<float>(), y.data<float>(), n, p.numel() / std::max<std::int64_t>(n, 1));
}

double evaluate_regression(Net& net, BatchSource& loader, RegressionTally& tally,
                           std::uint32_t epoch) {
  StepContext ctx;
  ctx.phase = Phase::test;
  double loss = 0;
  std::int64_t seen = 0;
  loader.start_epoch(epoch);
  while (const std::int64_t n = loader.next(net.input(), net.labels())) {
    net.forward(ctx);
    // The loss is a mean over the batch; a short last batch's padding rows are left out of it
    // by recomputing from the tally's own per-sample errors (EuclideanLoss is their mean).
    const double before = tally.squared;
    tally_regression(net, n, tally);
    loss += tally.squared - before;
    seen += n;
  }
  return seen ? loss / static_cast<double>(seen) : 0.0;
}

}  // namespace ruche
