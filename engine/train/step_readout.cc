#include "engine/train/step_readout.h"

#include <climits>
#include <cmath>

namespace ruche {

StepReadout::StepReadout(Net& net, Task task, bool sigmoid, int micro_batches, const Tensor* probs,
                         std::optional<std::int32_t> ignored_label)
    : net_(net),
      task_(task),
      sigmoid_(sigmoid),
      probs_(probs),
      ignored_(ignored_label ? *ignored_label : INT64_MIN),
      rows_(static_cast<std::size_t>(micro_batches), 0),
      readback_(net.loss().device()) {
  RUCHE_CHECK(task != Task::classification || probs != nullptr)
      << "StepReadout: a classifier's probabilities are not given";
  const Device device = net.loss().device();
  for (const auto& layer : net.layers()) {
    if (layer->deferred_check().defined()) checked_.push_back(layer.get());
  }
  record_ = Tensor::zeros(Shape{micro_batches * fields}, DType::f32, device);
  grad_sums_ = Tensor::zeros(Shape{2}, DType::i64, device);
  record_at_ = readback_.add(record_);
  sums_at_ = readback_.add(grad_sums_);
  if (!checked_.empty()) {
    checks_ = Tensor::zeros(Shape{micro_batches * static_cast<std::int64_t>(checked_.size())},
                            DType::i64, device);
    checks_at_ = readback_.add(checks_);
  }
}

Tensor StepReadout::field(int k, std::int64_t at, std::int64_t width) {
  return record_.narrow(0, k * fields + at, width);
}

void StepReadout::record_micro_batch(int k, std::int64_t n) {
  rows_[static_cast<std::size_t>(k)] = n;
  field(k, loss, 1).copy_from(net_.loss().view(Shape{1}));
  const auto& terms = net_.losses();
  if (terms.size() > 1) {  // each loss beside the weighted total
    for (std::size_t i = 0; i < terms.size() && i < StepVotes::max_loss_terms; ++i) {
      field(k, Field::terms + static_cast<std::int64_t>(i), 1)
          .copy_from(terms[i].value.view(Shape{1}));
    }
  }
  if (task_ == Task::classification) {
    Tensor out = field(k, tally, 2);
    ops::top1_hits(*probs_, net_.labels(), n, ignored_, out);
  } else {
    Tensor out = field(k, tally, 3);
    ops::regression_errors(net_.output(), net_.labels(), n, sigmoid_, out);
  }
  const auto checked = static_cast<std::int64_t>(checked_.size());
  for (std::int64_t c = 0; c < checked; ++c) {
    checks_.narrow(0, k * checked + c, 1)
        .copy_from(checked_[static_cast<std::size_t>(c)]->deferred_check());
  }
}

StepVotes StepReadout::fetch(ops::SumSquaresFinite& grad_sums) {
  readback_.fetch();  // the step's one wait for the device
  if (checks_at_ >= 0) {
    const std::int64_t* codes = readback_.host(checks_at_).data<std::int64_t>();
    for (std::size_t k = 0; k < rows_.size(); ++k) {
      for (std::size_t c = 0; c < checked_.size(); ++c) {
        const std::string failure =
            checked_[c]->deferred_check_failure(codes[k * checked_.size() + c]);
        RUCHE_REQUIRE(failure.empty()) << failure;
      }
    }
  }
  const float* record = readback_.host(record_at_).data<float>();
  StepVotes votes;
  for (std::size_t k = 0; k < rows_.size(); ++k) {
    const float* row = record + static_cast<std::int64_t>(k) * fields;
    const auto n = static_cast<float>(rows_[k]);
    if (!std::isfinite(row[loss])) votes[StepVotes::nonfinite_loss] = 1;
    votes[StepVotes::loss_sum] += row[loss] * n;
    if (net_.losses().size() > 1) {
      for (std::size_t i = 0; i < StepVotes::max_loss_terms; ++i) {
        votes[StepVotes::loss_terms + i] += row[terms + static_cast<std::int64_t>(i)] * n;
      }
    }
    votes[StepVotes::hits] += row[tally];
    if (task_ == Task::classification) {
      votes[StepVotes::labelled] += row[tally + 1];
    } else {
      votes[StepVotes::squared_error] += row[tally + 1];
      votes[StepVotes::absolute_error] += row[tally + 2];
      votes[StepVotes::labelled] += n;
    }
    votes[StepVotes::samples] += n;
  }
  grad_sums = ops::SumSquaresFinite::of(readback_.host(sums_at_));
  return votes;
}

}  // namespace ruche
