#include "engine/train/ema.h"

#include <string>

#include "engine/error.h"
#include "ops/ops.h"

namespace ruche {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

Tensor flat(const Tensor& t) { return t.numel() == 0 ? t : t.view(Shape{t.numel()}); }

void swap_contents(Tensor& a, Tensor& b) {
  if (a.numel() == 0) return;
  const Tensor held = a.clone();
  a.copy_from(b);
  b.copy_from(held);
}

}  // namespace

WeightAverage::WeightAverage(Net& net, float decay) : net_(net), decay_(decay) {
  RUCHE_REQUIRE(decay > 0 && decay < 1) << "--ema: the decay must be in (0, 1), got " << decay;
  params_ = flat(net.params()).clone();
  buffers_ = flat(net.buffers()).clone();
  for (const ParamEntry& e : net.buffer_table()) {
    if (ends_with(e.name, "num_batches_tracked")) counts_.emplace_back(e.offset, e.shape.numel());
  }
}

void WeightAverage::update() {
  Tensor params = flat(net_.params());
  ops::scale(decay_, params_);
  ops::axpy(1 - decay_, params, params_);
  if (buffers_.numel() == 0) return;
  Tensor buffers = flat(net_.buffers());
  ops::scale(decay_, buffers_);
  ops::axpy(1 - decay_, buffers, buffers_);
  for (const auto& [offset, n] : counts_) {
    Tensor count = buffers_.narrow(0, offset, n);
    count.copy_from(buffers.narrow(0, offset, n));
  }
}

void WeightAverage::add_to(StateLayout& layout) {
  constexpr std::int64_t kF32 = sizeof(float);
  auto add = [&](const std::string& region, const Tensor& tensor,
                 const std::vector<ParamEntry>& table) {
    const std::int64_t at = layout.total_bytes();
    layout.regions.push_back({region, tensor});
    for (const ParamEntry& e : table) {
      StateTensor t;
      t.name = region.substr(0, 4) + e.name;  // "ema.conv1.weight", "ema.bn1.running_mean"
      t.shape = e.shape;
      t.offset = at + e.offset * kF32;
      t.bytes = e.shape.numel() * kF32;
      layout.tensors.push_back(std::move(t));
    }
  };
  add("ema.params", params_, net_.param_table());
  if (buffers_.numel() > 0) add("ema.buffers", buffers_, net_.buffer_table());
}

void WeightAverage::swap() {
  Tensor params = flat(net_.params());
  swap_contents(params, params_);
  Tensor buffers = flat(net_.buffers());
  swap_contents(buffers, buffers_);
}

}  // namespace ruche
