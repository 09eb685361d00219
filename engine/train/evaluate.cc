#include "engine/train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/layers/softmax_loss_layer.h"
#include "engine/train/task.h"
#include "ops/pointwise_loss.h"

namespace ruche {

const Tensor& net_probabilities(const Net& net) {
  // The main head's (the heaviest loss_weight), never just the first loss found.
  const int main = net.main_loss_layer();
  if (main >= 0) {
    const Layer& layer = *net.layers()[static_cast<std::size_t>(main)];
    const auto* loss = dynamic_cast<const SoftmaxWithLossLayer*>(&layer);
    RUCHE_REQUIRE(loss) << "the net's main loss '" << layer.name()
                        << "' is not SoftmaxWithLoss, so it gives no class probabilities";
    return loss->probabilities();
  }
  // A deploy net: its last layer's output, when that is a Softmax.
  RUCHE_REQUIRE(!net.layers().empty() && net.layers().back()->type() == "Softmax")
      << "the net has no SoftmaxWithLoss layer and does not end in Softmax, so it gives no class "
         "probabilities";
  return const_cast<Net&>(net).output();
}

std::optional<std::int32_t> net_ignored_label(const Net& net) {
  const int main = net.main_loss_layer();
  if (main < 0) return std::nullopt;
  const auto* loss =
      dynamic_cast<const SoftmaxWithLossLayer*>(net.layers()[static_cast<std::size_t>(main)].get());
  return loss ? loss->ignore_label() : std::nullopt;
}

namespace {

// Rows [0, n) of probabilities p [n, C] and labels y [n] without those labelled `ignored`.
std::pair<Tensor, Tensor> without_ignored(const Tensor& p, const Tensor& y,
                                          std::optional<std::int32_t> ignored) {
  if (!ignored) return {p, y};
  const std::int64_t n = p.size(0), classes = p.size(1);
  const std::int32_t* py = y.data<std::int32_t>();
  const float* pp = p.data<float>();
  std::vector<float> kept_p;
  std::vector<std::int32_t> kept_y;
  for (std::int64_t i = 0; i < n; ++i) {
    if (py[i] == *ignored) continue;
    kept_p.insert(kept_p.end(), pp + i * classes, pp + (i + 1) * classes);
    kept_y.push_back(py[i]);
  }
  const auto kept = static_cast<std::int64_t>(kept_y.size());
  return {Tensor::from_vector(kept_p, {kept, classes}), Tensor::from_vector(kept_y, {kept})};
}

// A deploy net's output as [N, C]: [N, C] itself, or [N, C, 1, ...]; anything else is an error.
std::int64_t deploy_classes(Net& net) {
  const Tensor& out = net.output();
  RUCHE_REQUIRE(out.defined() && out.ndim() >= 2 && out.size(0) == net.input().size(0))
      << "the net has no loss layer and its output does not hold one row per sample, so it gives "
         "no class scores to evaluate";
  for (int d = 2; d < out.ndim(); ++d) {
    RUCHE_REQUIRE(out.size(d) == 1)
        << "the net has no loss layer and its output is " << out.ndim() << "-dimensional with size "
        << out.size(d) << " in dim " << d
        << ", not [N, classes]: end the deploy net with the classifier's scores (or Softmax)";
  }
  return out.size(1);
}

bool ends_in_softmax(const Net& net) {
  return !net.layers().empty() && net.layers().back()->type() == "Softmax";
}

}  // namespace

std::int64_t probability_classes(Net& net) {
  if (net.has_loss()) return net_probabilities(net).size(1);
  return deploy_classes(net);
}

Tensor class_probabilities(Net& net, std::int64_t n) {
  if (net.has_loss()) return net_probabilities(net).narrow(0, 0, n).to(Device::cpu());
  const std::int64_t classes = deploy_classes(net);
  // [N, C, 1, ...] read as [N, C]; on the CPU, contiguous.
  const Tensor out = net.output().narrow(0, 0, n).to(Device::cpu());
  const std::vector<float> v = out.to_vector();
  if (ends_in_softmax(net)) return Tensor::from_vector(v, {n, classes});
  // Scores (logits): their softmax over the classes, in double, the largest subtracted.
  std::vector<float> p(v.size());
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = v.data() + i * classes;
    const float top = *std::max_element(row, row + classes);
    double sum = 0;
    for (std::int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(row[c] - top));
    for (std::int64_t c = 0; c < classes; ++c) {
      p[static_cast<std::size_t>(i * classes + c)] =
          static_cast<float>(std::exp(static_cast<double>(row[c] - top)) / sum);
    }
  }
  return Tensor::from_vector(p, {n, classes});
}

double evaluate(Net& net, BatchSource& loader, EvalAccumulator& acc, std::uint32_t epoch) {
  StepContext ctx;
  ctx.phase = Phase::test;
  probability_classes(net);  // a net that gives no class scores fails here, in one line
  const std::optional<std::int32_t> ignored = net_ignored_label(net);
  // A deploy net's Input has no labels top: the data's labels land in a tensor of our own.
  Tensor labels = net.labels();
  if (!labels.defined()) {
    labels = Tensor::zeros({net.input().size(0)}, DType::i32, net.input().device());
  }
  double nll = 0;
  std::int64_t seen = 0;
  loader.start_epoch(epoch);
  while (const std::int64_t n = loader.next(net.input(), labels)) {
    net.forward(ctx);
    // A kept last batch is partial: only its first n rows are samples.
    const auto [p, y] = without_ignored(class_probabilities(net, n),
                                        labels.narrow(0, 0, n).to(Device::cpu()), ignored);
    acc.add(p, y);
    const float* pp = p.data<float>();
    const std::int32_t* py = y.data<std::int32_t>();
    const std::int64_t classes = p.size(1), kept = p.size(0);
    for (std::int64_t i = 0; i < kept; ++i) {
      nll -= std::log(std::max(pp[i * classes + py[i]], 1e-12f));
    }
    seen += kept;
  }
  return seen ? nll / static_cast<double>(seen) : 0.0;
}

namespace {

// The loss's mean over each of rows [0, n), summed: the loss of a partial batch without its
// padding rows. EuclideanLoss's is the tally's own squared error.
double loss_sum_of(const std::string& loss, const Tensor& p, const Tensor& y, std::int64_t n) {
  ops::PointwiseLoss kind = ops::PointwiseLoss::l1;
  if (loss == "SmoothL1Loss") kind = ops::PointwiseLoss::smooth_l1;
  if (loss == "SigmoidCrossEntropyLoss") kind = ops::PointwiseLoss::bce_logits;
  const float* pp = p.data<float>();
  const float* py = y.data<float>();
  const std::int64_t count = p.numel();
  double sum = 0;
  for (std::int64_t i = 0; i < count; ++i) sum += ops::pointwise_loss(kind, 1.0, pp[i], py[i]);
  // NOLINTNEXTLINE(bugprone-integer-division): exact, p is n rows of one width
  return n ? sum / static_cast<double>(count / n) : 0.0;
}

}  // namespace

void tally_regression(Net& net, std::int64_t n, RegressionTally& tally) {
  const Tensor p = net.output().narrow(0, 0, n).to(Device::cpu());
  const Tensor y = net.labels().narrow(0, 0, n).to(Device::cpu());
  const std::int64_t width = p.numel() / std::max<std::int64_t>(n, 1);
  // SigmoidCrossEntropyLoss: the net gives logits; the prediction the metrics read is their
  // sigmoid.
  tally.add(p.data<float>(), y.data<float>(), n, width,
            loss_type(net.param()) == "SigmoidCrossEntropyLoss");
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
    // by recomputing it per sample (EuclideanLoss's is the tally's own squared error).
    const double before = tally.squared;
    tally_regression(net, n, tally);
    if (loss_type(net.param()) == "EuclideanLoss") {
      loss += tally.squared - before;
    } else {
      loss += loss_sum_of(loss_type(net.param()), net.output().narrow(0, 0, n).to(Device::cpu()),
                          net.labels().narrow(0, 0, n).to(Device::cpu()), n);
    }
    seen += n;
  }
  return seen ? loss / static_cast<double>(seen) : 0.0;
}

}  // namespace ruche
