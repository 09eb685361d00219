// A tensor seen as [outer, C, inner] around an axis: what the axis ops (softmax over an axis, a
// copy along an axis, per-channel scale) of every device cut their loops by.
#pragma once

#include <cstdint>

#include "engine/error.h"
#include "engine/tensor/tensor.h"

namespace ruche::ops {

struct AxisSplit {
  std::int64_t outer = 1, channels = 1, inner = 1;
};

// x's dims before `axis`, at it (`count` dims from it), and after; an axis outside x is a
// ruche::Error naming `op`.
inline AxisSplit split_at(const char* op, const Tensor& x, int axis, int count = 1) {
  RUCHE_REQUIRE(axis >= 0 && axis + count <= x.ndim())
      << op << ": axis " << axis << " is outside " << x.shape().str();
  AxisSplit s;
  for (int d = 0; d < axis; ++d) s.outer *= x.size(d);
  for (int d = axis; d < axis + count; ++d) s.channels *= x.size(d);
  for (int d = axis + count; d < x.ndim(); ++d) s.inner *= x.size(d);
  return s;
}

}  // namespace ruche::ops
