#include "tools/seeds.h"

#include <cstdio>
#include <filesystem>

#include "engine/error.h"

namespace ruche::tools {

int train_seeds(const TrainRun& run, int seeds) {
  RUCHE_REQUIRE(seeds >= 1) << "--seeds " << seeds << ": expected a positive number";
  const std::uint64_t base = run.solver.random_seed();
  for (int k = 1; k <= seeds; ++k) {
    TrainRun one = run;
    one.out_dir = (std::filesystem::path(run.out_dir) / ("seed-" + std::to_string(k))).string();
    one.solver.set_random_seed(base + static_cast<std::uint64_t>(k - 1));
    std::printf("seeds: run %d of %d, --seed %llu, %s\n", k, seeds,
                static_cast<unsigned long long>(one.solver.random_seed()), one.out_dir.c_str());
    const int code = train(one);
    if (code != 0) {
      std::printf("seeds: %s ended with exit %d; the later seeds were not run\n",
                  one.out_dir.c_str(), code);
      return code;
    }
  }
  return 0;
}

}  // namespace ruche::tools
