// The memory plan's arithmetic: buffers with lifetimes placed in one arena so that buffers whose
// lives overlap never overlap in memory (docs/ARCHITECTURE.md "Memory plan"). Times are steps of
// a training step's schedule, inclusive at both ends; the Net says what they mean.
#pragma once

#include <cstddef>
#include <vector>

namespace ruche {

struct BufferLife {
  std::size_t bytes = 0;
  int first = 0, last = 0;  // the first and the last time the buffer is used
};

struct MemoryPlan {
  std::vector<std::size_t> offsets;  // of each buffer in the arena, 64-byte aligned
  std::size_t peak = 0;              // the arena's size
  std::size_t naive = 0;             // the sum of the buffers' sizes: one allocation each
};

// Greedy placement, largest buffers first, each at the lowest offset free of every placed buffer
// whose life overlaps its own.
MemoryPlan plan_memory(const std::vector<BufferLife>& buffers);

}  // namespace ruche
