// The machine's single-precision GEMM rate through oneDNN's dnnl_sgemm (the library ruche's
// convolutions run on): C = A B on N x N matrices, the best of `reps` after a warm-up, so
// benchmarks/throughput.py can state each model's training FLOP rate as a fraction of it.
// Prints one JSON line: {"n": N, "threads": T, "gflops_best": ..., "gflops_median": ...}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <vector>

#include <CLI/CLI.hpp>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

int run(int argc, char** argv) {
  int n = 2048, reps = 5, threads = 1;
  CLI::App app{"gemm_bench: oneDNN sgemm GFLOP/s on N x N matrices"};
  app.add_option("--n", n, "matrix size")->capture_default_str();
  app.add_option("--reps", reps, "timed products after one warm-up")->capture_default_str();
  app.add_option("--threads", threads, "OpenMP threads")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  omp_set_num_threads(threads);

  const auto count = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  // Values in [0, 1) from a fixed pattern: denormals or NaNs would change the speed.
  std::vector<float> a(count), b(count), c(count);
  for (std::size_t i = 0; i < count; ++i) {
    a[i] = static_cast<float>(i % 97) / 97.0f;
    b[i] = static_cast<float>(i % 89) / 89.0f;
  }
  auto product = [&] {
    const dnnl_status_t s =
        dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    if (s != dnnl_success) {
      std::fprintf(stderr, "gemm_bench: dnnl_sgemm failed (status %d)\n", static_cast<int>(s));
      std::exit(1);
    }
  };
  product();
  std::vector<double> gflops;
  const double flops = 2.0 * n * static_cast<double>(n) * n;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    product();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gflops.push_back(flops / s / 1e9);
  }
  std::sort(gflops.begin(), gflops.end());
  std::printf("{\"n\": %d, \"threads\": %d, \"gflops_best\": %.2f, \"gflops_median\": %.2f}\n", n,
              threads, gflops.back(), gflops[gflops.size() / 2]);
  return 0;
}

// Anything thrown (a bad flag value, an allocation) is one line and exit 1, never an abort.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemm_bench: %s\n", e.what());
    return 1;
  }
}
