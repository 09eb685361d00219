#include "engine/rng/fill.h"

namespace ruche {
namespace {

// Fills on the host and copies to the tensor's device, so every device sees the same values.
template <typename Draw>
void fill_with(Tensor& t, Draw draw) {
  t.check_dtype(DType::f32, "fill");
  Tensor host = t.device().is_cpu() && t.is_contiguous() ? t : Tensor::empty(t.shape());
  float* p = host.data<float>();
  const std::int64_t n = host.numel();
  for (std::int64_t i = 0; i < n; ++i) p[i] = draw(static_cast<std::uint64_t>(i));
  if (!host.shares_storage(t)) t.copy_from(host);
}

}  // namespace

void fill_uniform(Tensor& t, float low, float high, const RngStream& stream) {
  fill_with(t, [&](std::uint64_t i) { return low + (high - low) * rng_uniform(stream, i); });
}

void fill_normal(Tensor& t, float mean, float stddev, const RngStream& stream) {
  fill_with(t, [&](std::uint64_t i) { return mean + stddev * rng_normal(stream, i); });
}

}  // namespace ruche
