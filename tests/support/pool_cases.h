// Pooling windows for the pooling tests: Pool2dParams in one call, and a named case of an input
// shape with its window.
#pragma once

#include "engine/tensor/tensor.h"
#include "ops/ops.h"

namespace ruche::testing {

// A kh x kw window moved by sh x sw over an input padded by ph x pw.
inline ops::Pool2dParams pool_params(int kh, int kw, int sh, int sw, int ph, int pw,
                                     bool ceil_mode = false, bool count_include_pad = true) {
  ops::Pool2dParams p;
  p.kernel_h = kh;
  p.kernel_w = kw;
  p.stride_h = sh;
  p.stride_w = sw;
  p.pad_h = ph;
  p.pad_w = pw;
  p.ceil_mode = ceil_mode;
  p.count_include_pad = count_include_pad;
  return p;
}

struct PoolCase {
  const char* name;
  Shape x;
  ops::Pool2dParams p;
};

}  // namespace ruche::testing
