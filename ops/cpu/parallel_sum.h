// Sums over an index range in double on the OpenMP team, combined in thread order, so a given
// thread count always gives the same bits (docs/ARCHITECTURE.md "Randomness and determinism").
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "ops/cpu/checks.h"

namespace ruche::ops::cpu {

constexpr int kMaxSumThreads = 256;

// K sums over i in [begin, end): add(i, acc) adds element i's terms to acc[0..K). Ranges shorter
// than kParallelMin run on the calling thread.
template <int K, typename Add>
std::array<double, K> parallel_sums(std::int64_t begin, std::int64_t end, Add add) {
  std::array<double, K> partial[kMaxSumThreads];
  int used = 1;
  const int threads = std::min(omp_get_max_threads(), kMaxSumThreads);
#pragma omp parallel num_threads(threads) if (end - begin >= kParallelMin)
  {
    std::array<double, K> acc{};
#pragma omp for schedule(static) nowait
    for (std::int64_t i = begin; i < end; ++i) add(i, acc);
    partial[omp_get_thread_num()] = acc;
    if (omp_get_thread_num() == 0) used = omp_get_num_threads();
  }
  std::array<double, K> total{};
  for (int t = 0; t < used; ++t) {
    for (int k = 0; k < K; ++k) total[k] += partial[t][k];
  }
  return total;
}

}  // namespace ruche::ops::cpu
