// Filling host tensors from a counter-based stream (initialisation, tests, synthetic data).
#pragma once

#include "engine/rng/philox.h"
#include "engine/tensor/tensor.h"

namespace ruche {

// Element i of t (row-major) gets the stream's uniform/normal at position i.
void fill_uniform(Tensor& t, float low, float high, const RngStream& stream);
void fill_normal(Tensor& t, float mean, float stddev, const RngStream& stream);

}  // namespace ruche
