#include "engine/train/tensorboard_log.h"

#include <cmath>

#include "engine/error.h"
#include "engine/log/confusion_image.h"
#include "ops/ops.h"

namespace ruche {
namespace {

// ||flat[offset, offset + count)|| through the op the NaN guard uses: on the tensor's own device,
// so a GPU run copies only the sum back.
double l2_norm(const Tensor& flat, std::int64_t offset, std::int64_t count) {
  return std::sqrt(ops::SumSquaresFinite::now(flat.narrow(0, offset, count), count).sum_squares);
}

bool holds(GradRange range, const ParamEntry& p) {
  return p.offset >= range.begin && p.offset + p.count <= range.end;
}

// Host copies of the parameters and the gradients (histograms need every value), and a visit of
// every trainable parameter with its weights and (where this rank holds them) its gradients; null
// when it does not.
template <typename Visit>
void for_each_trainable(Net& net, const Tensor& grads, GradRange range, Visit visit) {
  const Tensor params = net.params().to(Device::cpu());
  const Tensor host_grads = grads.to(Device::cpu());
  RUCHE_CHECK(params.dtype() == DType::f32 && host_grads.dtype() == DType::f32)
      << "tensorboard: parameters and gradients must be f32";
  for (const ParamEntry& p : net.param_table()) {
    if (p.frozen) continue;
    visit(p, params.data<float>() + p.offset,
          holds(range, p) ? host_grads.data<float>() + (p.offset - range.begin) : nullptr);
  }
}

}  // namespace

void log_param_norms(TensorBoardWriter& tb, Net& net, const Tensor& grads, GradRange range,
                     std::int64_t step) {
  for (const ParamEntry& p : net.param_table()) {
    if (p.frozen) continue;
    tb.add_scalar("weight_norm/" + p.name, l2_norm(net.params(), p.offset, p.count), step);
    if (holds(range, p)) {
      tb.add_scalar("grad_norm/" + p.name, l2_norm(grads, p.offset - range.begin, p.count), step);
    }
  }
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
