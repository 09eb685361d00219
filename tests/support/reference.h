// Reference values computed by PyTorch: tests/ops/reference/generate.py writes
// $RUCHE_REFERENCE_DIR/<case>/<name>.npy before the reference tests run (a ctest fixture).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "engine/tensor/npy.h"

namespace ruche::testing {

// The tensor `name` of reference case `test_case`; fails the test when it is missing (a missing
// torch is a failure on our machines, not a skip).
inline Tensor reference(const std::string& test_case, const std::string& name) {
  const char* dir = std::getenv("RUCHE_REFERENCE_DIR");
  if (!dir) throw Error("RUCHE_REFERENCE_DIR is not set: run the reference tests through ctest");
  const std::string path = std::string(dir) + "/" + test_case + "/" + name + ".npy";
  if (!std::filesystem::exists(path)) {
    throw Error(path + ": missing reference (did tests/ops/reference/generate.py run?)");
  }
  return load_npy(path);
}

}  // namespace ruche::testing
