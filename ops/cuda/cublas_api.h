// cuBLAS, opened on first use (dlopen) instead of linked: a linked libcublas maps cuBLASLt and runs
// its static initialisers in every ruche process, about 140 MB resident before any work, CPU runs
// included (docs/ARCHITECTURE.md, Devices). The few entry points ruche calls, resolved once.
// Internal to ops/cuda (includes CUDA headers).
#pragma once

#include <cublas_api.h>

namespace ruche::ops::gpu {

// Typed as cublas_api.h declares them (some names have C++ overloads there, so no decltype).
struct CublasApi {
  cublasStatus_t (*create)(cublasHandle_t* handle);
  cublasStatus_t (*set_stream)(cublasHandle_t handle, cudaStream_t stream);
  cublasStatus_t (*set_math_mode)(cublasHandle_t handle, cublasMath_t mode);
  cublasStatus_t (*set_atomics_mode)(cublasHandle_t handle, cublasAtomicsMode_t mode);
  cublasStatus_t (*gemm_ex)(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void* alpha,
                            const void* a, cudaDataType a_type, int lda, const void* b,
                            cudaDataType b_type, int ldb, const void* beta, void* c,
                            cudaDataType c_type, int ldc, cublasComputeType_t compute_type,
                            cublasGemmAlgo_t algo);
  cublasStatus_t (*get_property)(libraryPropertyType type, int* value);
};

// libcublas.so.<CUBLAS_VER_MAJOR> from the loader's path, else from the toolkit ruche was built
// against; a ruche::Error naming both places when neither opens.
const CublasApi& cublas();

}  // namespace ruche::ops::gpu
