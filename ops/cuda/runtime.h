// The CUDA runtime unit, seen from outside ops/cuda: device discovery and versions. Includes no
// CUDA header, so any layer may ask which devices exist.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace ruche::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  std::size_t total_memory = 0;  // bytes
  int compute_major = 0, compute_minor = 0;
  int multiprocessors = 0;
};

// Whether this binary carries the CUDA backend.
bool compiled_with_cuda();
// The CUDA devices this process can use; empty when there are none, with the reason in why_none
// (no driver, no device, built without CUDA).
std::vector<DeviceInfo> list_devices(std::string* why_none = nullptr);
// "CUDA runtime X.Y, driver X.Y, cuDNN X.Y.Z, cuBLAS X.Y.Z"; what could be asked on this machine.
std::string library_versions();

}  // namespace ruche::cuda
