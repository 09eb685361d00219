// Running one layer outside a Net: parse its prototxt, reshape, bind tensors shaped per
// param_decls() (as the Net will), and check gradients through the Layer interface.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/layers/layer.h"
#include "engine/proto/text_format.h"
#include "engine/rng/fill.h"
#include "tests/support/gradcheck.h"

namespace ruche::testing {

inline proto::LayerParameter layer_param(const std::string& text) {
  proto::LayerParameter p;
  parse_prototxt(text, "test", p);
  return p;
}

// The shapes of `tensors`.
inline std::vector<Shape> shapes_of(const std::vector<Tensor>& tensors) {
  std::vector<Shape> s;
  s.reserve(tensors.size());
  for (const Tensor& t : tensors) s.push_back(t.shape());
  return s;
}

struct BoundLayer {
  std::unique_ptr<Layer> layer;
  LayerIO io;
  std::vector<ParamDecl> decls;
  StepContext ctx;

  void forward() { layer->forward(io, ctx); }
  void backward() { layer->backward(io, ctx); }
};

// Builds the layer for `text` on `bottoms`: tops and diffs zero-filled, f32 bottoms get a gradient
// (i32 ones, labels, none), learnable parameters drawn from U(-1, 1), buffers from their filler.
inline BoundLayer bind_layer(const std::string& text, const std::vector<Tensor>& bottoms,
                             int num_classes = 0) {
  BoundLayer b;
  b.layer = create_layer(layer_param(text));
  const std::vector<Shape> tops = b.layer->reshape(shapes_of(bottoms), num_classes);
  b.decls = b.layer->param_decls();
  b.layer->allocate(Device::cpu());
  b.io.bottom = bottoms;
  for (const Tensor& x : bottoms) {
    b.io.bottom_diff.push_back(x.dtype() == DType::f32 ? Tensor::zeros(x.shape()) : Tensor());
  }
  for (const Shape& s : tops) {
    b.io.top.push_back(Tensor::zeros(s));
    b.io.top_diff.push_back(Tensor::zeros(s));
  }
  std::uint32_t stream = 500;
  for (const ParamDecl& d : b.decls) {
    Tensor t = Tensor::empty(d.shape, d.dtype);
    if (d.role == ParamRole::buffer) {
      t.fill(d.filler.value());
      b.io.param_grads.emplace_back();
    } else {
      fill_uniform(t, -1.0f, 1.0f, RngStream{7, RngPurpose::test, 0, 0, stream++});
      b.io.param_grads.push_back(Tensor::zeros(d.shape));
    }
    b.io.params.push_back(t);
  }
  return b;
}

// Finite differences against the layer's backward for the f32 bottoms in `bottoms` and every
// learnable parameter. Loss layers ignore top_diff (the Net seeds dloss = 1), so for them the
// analytic gradients are scaled by the random weight of the one output.
inline void expect_layer_gradients(BoundLayer& b, const std::vector<int>& bottoms,
                                   bool loss_layer = false, GradCheckOptions opt = {}) {
  std::vector<Tensor> inputs = b.io.bottom;
  std::vector<int> checked = bottoms;
  for (std::size_t i = 0; i < b.decls.size(); ++i) {
    if (b.decls[i].role == ParamRole::buffer) continue;
    checked.push_back(static_cast<int>(inputs.size()));
    inputs.push_back(b.io.params[i]);
  }
  const std::size_t nb = b.io.bottom.size();
  // The inputs share storage with io's tensors, so perturbing them perturbs what the layer reads.
  auto forward = [&](std::vector<Tensor>&) {
    b.forward();
    return b.io.top[0];
  };
  auto backward = [&](std::vector<Tensor>&, const Tensor& r) {
    b.io.top_diff[0].copy_from(r);
    b.backward();
    const float scale = loss_layer ? r.item() : 1.0f;
    std::vector<Tensor> grads;
    auto scaled = [&](const Tensor& g) {
      if (!g.defined()) return Tensor();
      Tensor c = g.clone();
      float* p = c.data<float>();
      for (std::int64_t i = 0; i < c.numel(); ++i) p[i] *= scale;
      return c;
    };
    for (std::size_t i = 0; i < nb; ++i) grads.push_back(scaled(b.io.bottom_diff[i]));
    for (std::size_t i = 0; i < b.decls.size(); ++i) {
      if (b.decls[i].role != ParamRole::buffer) grads.push_back(scaled(b.io.param_grads[i]));
    }
    return grads;
  };
  expect_gradients_match(inputs, forward, backward, checked, opt);
}

}  // namespace ruche::testing
