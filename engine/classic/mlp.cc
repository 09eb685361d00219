#include "engine/classic/mlp.h"

#include <cmath>

#include "engine/rng/fill.h"
#include "ops/ops.h"

namespace ruche::classic {
namespace {

// torch.nn.Linear's default initialisation: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
void init_linear(Tensor& w, Tensor& b, std::uint64_t seed, std::uint32_t layer) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(w.size(1)));
  fill_uniform(w, -bound, bound, RngStream{seed, RngPurpose::init, 0, 0, 2 * layer});
  fill_uniform(b, -bound, bound, RngStream{seed, RngPurpose::init, 0, 0, 2 * layer + 1});
}

}  // namespace

MlpResult train_mlp(const Tensor& x, const Tensor& y, int hidden, float learning_rate,
                    int max_epochs, std::uint64_t seed) {
  RUCHE_REQUIRE(x.ndim() == 2 && y.ndim() == 2 && y.size(0) == x.size(0) && y.size(1) == 1)
      << "mlp: expected x [N, in] and y [N, 1], got " << x.str() << " and " << y.str();
  RUCHE_REQUIRE(hidden > 0) << "mlp: hidden must be positive, got " << hidden;
  const std::int64_t n = x.size(0);
  MlpResult r;
  r.w1 = Tensor::empty({hidden, x.size(1)});
  r.b1 = Tensor::empty({hidden});
  r.w2 = Tensor::empty({1, hidden});
  r.b2 = Tensor::empty({1});
  init_linear(r.w1, r.b1, seed, 0);
  init_linear(r.w2, r.b2, seed, 1);

  // Activations and gradients, allocated once.
  Tensor z1 = Tensor::empty({n, hidden}), h = Tensor::empty({n, hidden});
  Tensor z2 = Tensor::empty({n, 1}), out = Tensor::empty({n, 1});
  Tensor loss = Tensor::empty({1});
  Tensor dout = Tensor::empty({n, 1}), dz2 = Tensor::empty({n, 1});
  Tensor dh = Tensor::empty({n, hidden}), dz1 = Tensor::empty({n, hidden});
  Tensor dw1 = Tensor::empty(r.w1.shape()), db1 = Tensor::empty(r.b1.shape());
  Tensor dw2 = Tensor::empty(r.w2.shape()), db2 = Tensor::empty(r.b2.shape());

  auto forward = [&] {
    ops::linear_forward(x, r.w1, r.b1, z1);
    ops::activation_forward(ops::Activation::sigmoid, 0, z1, h);
    ops::linear_forward(h, r.w2, r.b2, z2);
    ops::activation_forward(ops::Activation::sigmoid, 0, z2, out);
    ops::mse_forward(out, y, loss);
  };
  for (r.epochs = 0; r.epochs < max_epochs; ++r.epochs) {
    forward();
    ops::mse_backward(out, y, dout, 1.0f);
    ops::activation_backward(ops::Activation::sigmoid, 0, out, dout, dz2);
    ops::linear_backward_weights(h, dz2, dw2, db2);
    ops::linear_backward_data(dz2, r.w2, dh);
    ops::activation_backward(ops::Activation::sigmoid, 0, h, dh, dz1);
    ops::linear_backward_weights(x, dz1, dw1, db1);
    ops::axpy(-learning_rate, dw1, r.w1);
    ops::axpy(-learning_rate, db1, r.b1);
    ops::axpy(-learning_rate, dw2, r.w2);
    ops::axpy(-learning_rate, db2, r.b2);
  }
  forward();
  r.final_loss = loss.item();
  r.outputs = out.to_vector();
  return r;
}

}  // namespace ruche::classic
