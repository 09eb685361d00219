#include "engine/graph/memory_plan.h"

#include <algorithm>
#include <numeric>
#include <utility>

namespace ruche {
namespace {

constexpr std::size_t kAlignment = 64;

std::size_t aligned(std::size_t bytes) {
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

bool lives_overlap(const BufferLife& a, const BufferLife& b) {
  return a.first <= b.last && b.first <= a.last;
}

}  // namespace

MemoryPlan plan_memory(const std::vector<BufferLife>& buffers) {
  MemoryPlan plan;
  plan.offsets.assign(buffers.size(), 0);
  std::vector<std::size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return buffers[a].bytes > buffers[b].bytes;
  });
  std::vector<std::size_t> placed;
  std::vector<std::pair<std::size_t, std::size_t>> taken;  // [begin, end) of overlapping lives
  for (std::size_t i : order) {
    const std::size_t size = aligned(buffers[i].bytes);
    plan.naive += size;
    taken.clear();
    for (std::size_t j : placed) {
      if (lives_overlap(buffers[i], buffers[j])) {
        taken.emplace_back(plan.offsets[j], plan.offsets[j] + aligned(buffers[j].bytes));
      }
    }
    std::sort(taken.begin(), taken.end());
    std::size_t offset = 0;
    for (const auto& [begin, end] : taken) {
      if (begin >= offset + size) break;  // the gap before this range holds the buffer
      offset = std::max(offset, end);
    }
    plan.offsets[i] = offset;
    plan.peak = std::max(plan.peak, offset + size);
    placed.push_back(i);
  }
  return plan;
}

}  // namespace ruche
