// Parameter initialisation: torch.nn's defaults, or the filler a layer's prototxt asks for,
// drawn from the counter-based generator.
#pragma once

#include "engine/layers/layer.h"
#include "engine/rng/philox.h"

namespace ruche {

// Fills t (shaped as decl) as decl.filler says; filler type "default" means torch.nn's
// initialisation for the parameter's role: kaiming_uniform(a=sqrt(5)) for weights, which is
// U(+-1/sqrt(fan_in)), the same bound for biases, 1 for batch-norm gamma, 0 for beta, and the
// filler's constant for buffers (running_var's is 1).
void fill_param(Tensor& t, const ParamDecl& decl, const RngStream& stream);

}  // namespace ruche
