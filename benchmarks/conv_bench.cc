// Times one convolution layer's training work (forward, backward data, backward weights) through
// ruche's op table; benchmarks/conv_vs_torch.py runs it alternately with PyTorch.
// Prints one JSON line: {"ms": [per-round medians...]}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine/rng/fill.h"
#include "ops/ops.h"

int run(int argc, char** argv) {
  using namespace ruche;
  int n = 64, c = 32, h = 28, w = 28, k = 64, kernel = 3, pad = 1, stride = 1;
  int iters = 10, warmup = 3, threads = 1;
  CLI::App app{"conv_bench: ruche conv2d forward + backward timing"};
  app.add_option("--n", n);
  app.add_option("--c", c);
  app.add_option("--h", h);
  app.add_option("--w", w);
  app.add_option("--k", k);
  app.add_option("--kernel", kernel);
  app.add_option("--pad", pad);
  app.add_option("--stride", stride);
  app.add_option("--iters", iters);
  app.add_option("--warmup", warmup);
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  ops::set_num_threads(threads);

  ops::Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  Tensor x = Tensor::empty({n, c, h, w});
  Tensor wt = Tensor::empty({k, c, kernel, kernel});
  Tensor b = Tensor::zeros({k});
  fill_uniform(x, -1, 1, RngStream{1, RngPurpose::test, 0, 0, 0});
  fill_uniform(wt, -0.1f, 0.1f, RngStream{1, RngPurpose::test, 0, 0, 1});
  Tensor y = Tensor::empty(ops::conv2d_output_shape(x.shape(), wt.shape(), p));
  Tensor dy = Tensor::empty(y.shape());
  fill_uniform(dy, -1, 1, RngStream{1, RngPurpose::test, 0, 0, 2});
  Tensor dx = Tensor::empty(x.shape()), dw = Tensor::empty(wt.shape()), db = Tensor::empty({k});

  auto step = [&] {
    ops::conv2d_forward(x, wt, b, y, p);
    ops::conv2d_backward_data(dy, wt, dx, p);
    ops::conv2d_backward_weights(x, dy, dw, db, p);
  };
  for (int i = 0; i < warmup; ++i) step();
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("{\"ms\": %.4f}\n", ms[ms.size() / 2]);
  return 0;
}

// Anything thrown (a bad flag value, a shape ruche refuses) is one line and exit 1, never an abort.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conv_bench: %s\n", e.what());
    return 1;
  }
}
