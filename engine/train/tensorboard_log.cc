#include "engine/train/tensorboard_log.h"

#include <cmath>

#include "engine/error.h"
#include "engine/log/confusion_image.h"

namespace ruche {
namespace {

double l2_norm(const float* x, std::int64_t n) {
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  return std::sqrt(sum);
}

// Host copies of the parameters and the gradients, and a visit of every trainable parameter
// with its weights and (where this rank holds them) its gradients; null when it does not.
template <typename Visit>
void for_each_trainable(Net& net, const Tensor& grads, GradRange range, Visit visit) {
  const Tensor params = net.params().to(Device::cpu());
  const Tensor host_grads = grads.to(Device::cpu());
  RUCHE_CHECK(params.dtype() == DType::f32 && host_grads.dtype() == DType::f32)
      << "tensorboard: parameters and gradients must be f32";
  for (const ParamEntry& p : net.param_table()) {
    if (p.frozen) continue;
    const bool held = p.offset >= range.begin && p.offset + p.count <= range.end;
    visit(p, params.data<float>() + p.offset,
          held ? host_grads.data<float>() + (p.offset - range.begin) : nullptr);
  }
}

}  // namespace

void log_param_norms(TensorBoardWriter& tb, Net& net, const Tensor& grads, GradRange range,
                     std::int64_t step) {
  for_each_trainable(net, grads, range, [&](const ParamEntry& p, const float* w, const float* g) {
    tb.add_scalar("weight_norm/" + p.name, l2_norm(w, p.count), step);
    if (g) tb.add_scalar("grad_norm/" + p.name, l2_norm(g, p.count), step);
  });
}

void log_param_histograms(TensorBoardWriter& tb, Net& net, const Tensor& grads, GradRange range,
                          std::int64_t step) {
  for_each_trainable(net, grads, range, [&](const ParamEntry& p, const float* w, const float* g) {
    tb.add_histogram("weights/" + p.name, w, p.count, step);
    if (g) tb.add_histogram("grads/" + p.name, g, p.count, step);
  });
}

void log_confusion_image(TensorBoardWriter& tb, const std::string& split,
                         const ConfusionMatrix& confusion, std::int64_t step) {
  const PngImage image = confusion_image(confusion);
  tb.add_image(split + "/confusion_matrix", image.png, image.width, image.height, 3, step);
}

}  // namespace ruche
