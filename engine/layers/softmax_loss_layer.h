// SoftmaxWithLoss: mean cross-entropy of softmax(logits [B, C]) against i32 labels [B], with
// optional label smoothing, class weights and an ignored label (torch.nn.CrossEntropyLoss). The
// layer keeps the probabilities, so the trainer reads predictions without computing them again.
#pragma once

#include <cstdint>
#include <optional>

#include "engine/layers/layer.h"
#include "ops/ops.h"

namespace ruche {

class SoftmaxWithLossLayer final : public Layer {
 public:
  explicit SoftmaxWithLossLayer(const proto::LayerParameter& p);

  int num_bottoms() const override { return 2; }  // logits, labels
  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int num_classes) override;
  void allocate(Device device) override;
  double forward_flops() const override;
  void forward(LayerIO& io, const StepContext& ctx) override;
  // Writes d(loss)/d(logits) for a loss gradient of 1 (the Net seeds the loss with 1); the labels
  // get no gradient.
  void backward(LayerIO& io, const StepContext& ctx) override;

  // On CUDA: the first bad label of a forward with ctx.defer_checks (ops' bad_label_code).
  Tensor deferred_check() const override { return label_check_; }
  std::string deferred_check_failure(std::int64_t code) const override;

  // softmax(logits) [B, C] of the last forward, on the net's device.
  const Tensor& probabilities() const { return probs_; }
  // loss_param.ignore_label: samples of this label count in no loss, accuracy or eval.
  std::optional<std::int32_t> ignore_label() const { return ce_.ignore_label; }

 private:
  // [B, C, 1, ...] logits read as [B, C].
  Tensor logits_2d(const Tensor& t) const;

  Shape logits_;  // [B, C]
  ops::CrossEntropyParams ce_;
  Tensor probs_;
  Tensor label_check_;  // i64 [1] on a CUDA device; undefined on the CPU, which checks at once
};

}  // namespace ruche
