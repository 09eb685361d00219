// ruche devices: the CUDA devices this process can use, or "no CUDA device", and the versions
// of the CUDA libraries loaded beside those built against.
#include <cstdio>

#if RUCHE_WITH_CUDA
#include "comm/nccl/nccl_communicator.h"  // nccl_version(); no NCCL header
#endif
#include "ops/cuda/runtime.h"
#include "tools/commands.h"

namespace ruche::tools {

void add_devices_command(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand("devices", "List CUDA devices (name, memory, capability)");
  cmd->callback([&exit_code] {
    std::string why;
    const auto devices = cuda::list_devices(&why);
    if (devices.empty()) {
      std::printf("no CUDA device (%s)\n", why.c_str());
    }
    for (const auto& d : devices) {
      std::printf("cuda:%d  %s  %.1f GiB  compute %d.%d  %d SMs\n", d.index, d.name.c_str(),
                  static_cast<double>(d.total_memory) / (1u << 30), d.compute_major,
                  d.compute_minor, d.multiprocessors);
    }
#if RUCHE_WITH_CUDA
    // One line, so benchmarks/gpu_check.sh keeps it whole (the line starting "CUDA runtime").
    std::printf("%s, %s\n", cuda::library_versions().c_str(), nccl_version().c_str());
#else
    std::printf("%s\n", cuda::library_versions().c_str());
#endif
    exit_code = 0;
  });
}

}  // namespace ruche::tools
