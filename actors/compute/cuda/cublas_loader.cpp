// cuBLAS and cuBLASLt, loaded when first used instead of at process start.
//
// Linking them makes every process pay their static initialisation, about
// 140 ms on the 2-core VM, before main: each process actor's worker (the
// driver's executable, re-run) paid it too, which held spawning to ~5 actors/s.
// These definitions stand in for the few entry points troupe calls; the first
// call dlopens the library and every call forwards to the real function. A
// library that cannot be loaded makes the call return
// CUBLAS_STATUS_NOT_INITIALIZED (the checks then name the call), after one
// message on stderr with dlerror's reason.
#include <dlfcn.h>

#include <cublasLt.h>
#include <cublas_v2.h>

#include <cstdio>

namespace {

void* library(const char* soname) {
  void* h = dlopen(soname, RTLD_NOW | RTLD_GLOBAL);
  if (!h) std::fprintf(stderr, "troupe: cannot load %s: %s\n", soname, dlerror());
  return h;
}

void* cublas_lib() {
  static void* h = library("libcublas.so." TROUPE_CUBLAS_SOVERSION);
  return h;
}

void* cublaslt_lib() {
  static void* h = library("libcublasLt.so." TROUPE_CUBLAS_SOVERSION);
  return h;
}

// The real function `name` from lib (null when it cannot be had), looked up once per call site.
template <class Fn>
Fn real(void* lib, const char* name) {
  return lib ? reinterpret_cast<Fn>(dlsym(lib, name)) : nullptr;
}

}  // namespace

#define TROUPE_FORWARD(lib, name, params, args)                                       \
  extern "C" cublasStatus_t name params {                                              \
    using Fn = cublasStatus_t(*) params;                                               \
    static const Fn fn = real<Fn>(lib(), #name);                                       \
    return fn ? fn args : CUBLAS_STATUS_NOT_INITIALIZED;                               \
  }

TROUPE_FORWARD(cublas_lib, cublasCreate_v2, (cublasHandle_t * handle), (handle))
TROUPE_FORWARD(cublas_lib, cublasSetStream_v2, (cublasHandle_t handle, cudaStream_t stream), (handle, stream))
TROUPE_FORWARD(cublas_lib, cublasGemmEx,
               (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B, cudaDataType Btype,
                int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                cublasGemmAlgo_t algo),
               (handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
                computeType, algo))

TROUPE_FORWARD(cublaslt_lib, cublasLtCreate, (cublasLtHandle_t * handle), (handle))
TROUPE_FORWARD(cublaslt_lib, cublasLtMatmulDescCreate,
               (cublasLtMatmulDesc_t * desc, cublasComputeType_t computeType, cudaDataType_t scaleType),
               (desc, computeType, scaleType))
TROUPE_FORWARD(cublaslt_lib, cublasLtMatmulDescSetAttribute,
               (cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const void* buf, size_t size),
               (desc, attr, buf, size))
TROUPE_FORWARD(cublaslt_lib, cublasLtMatrixLayoutCreate,
               (cublasLtMatrixLayout_t * layout, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld),
               (layout, type, rows, cols, ld))
TROUPE_FORWARD(cublaslt_lib, cublasLtMatmulPreferenceCreate, (cublasLtMatmulPreference_t * pref), (pref))
TROUPE_FORWARD(cublaslt_lib, cublasLtMatmulPreferenceSetAttribute,
               (cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                size_t size),
               (pref, attr, buf, size))
TROUPE_FORWARD(cublaslt_lib, cublasLtMatmulPreferenceDestroy, (cublasLtMatmulPreference_t pref), (pref))
TROUPE_FORWARD(cublaslt_lib, cublasLtMatmulAlgoGetHeuristic,
               (cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t pref,
                int requested, cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int* returned),
               (handle, desc, a, b, c, d, pref, requested, heuristicResultsArray, returned))
TROUPE_FORWARD(cublaslt_lib, cublasLtMatmul,
               (cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta,
                const void* C, cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc,
                const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspaceSizeInBytes, cudaStream_t stream),
               (handle, desc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algo, workspace,
                workspaceSizeInBytes, stream))
