#include "ops/cuda/cublas_api.h"

#include <dlfcn.h>

#include <string>

#include "engine/error.h"

namespace ruche::ops::gpu {
namespace {

template <typename F>
F symbol(void* library, const char* name) {
  void* address = dlsym(library, name);
  RUCHE_REQUIRE(address != nullptr) << "cuBLAS: the library has no " << name;
  return reinterpret_cast<F>(address);
}

void* open_cublas() {
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  if (void* library = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL)) return library;
  const std::string first_error = dlerror();
  const std::string beside_toolkit = std::string(RUCHE_CUDA_LIBRARY_DIR) + "/" + soname;
  if (void* library = dlopen(beside_toolkit.c_str(), RTLD_NOW | RTLD_LOCAL)) return library;
  RUCHE_FAIL() << "cuBLAS: cannot open " << soname << " (" << first_error << ") nor "
               << beside_toolkit << "; install CUDA " << CUBLAS_VER_MAJOR
               << "'s cuBLAS or put its directory on LD_LIBRARY_PATH";
  return nullptr;  // not reached: RUCHE_FAIL throws
}

}  // namespace

const CublasApi& cublas() {
  static const CublasApi api = [] {
    void* library = open_cublas();  // kept open for the process's life
    CublasApi a{};
    a.create = symbol<decltype(a.create)>(library, "cublasCreate_v2");
    a.set_stream = symbol<decltype(a.set_stream)>(library, "cublasSetStream_v2");
    a.set_math_mode = symbol<decltype(a.set_math_mode)>(library, "cublasSetMathMode");
    a.set_atomics_mode = symbol<decltype(a.set_atomics_mode)>(library, "cublasSetAtomicsMode");
    a.gemm_ex = symbol<decltype(a.gemm_ex)>(library, "cublasGemmEx");
    a.get_property = symbol<decltype(a.get_property)>(library, "cublasGetProperty");
    return a;
  }();
  return api;
}

}  // namespace ruche::ops::gpu
