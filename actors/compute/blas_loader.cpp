// OpenBLAS, loaded when the host first multiplies matrices instead of at
// process start (its initialisation, thread pool included, was ~4 ms of every
// process's start here, each process actor's worker included, most of which
// never multiply). The one entry point troupe calls forwards to the real
// library, which is pinned to one thread as it loads: troupe splits the
// products over its own pool (parallel.cpp), one pool per core, not two.
#include <cblas.h>
#include <dlfcn.h>

#include <stdexcept>
#include <string>

namespace {

using Sgemm = void (*)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint, blasint, blasint, float,
                       const float*, blasint, const float*, blasint, float, float*, blasint);

Sgemm load_sgemm() {
  void* lib = nullptr;
  std::string why;
  for (const char* name : {"libopenblas.so.0", TROUPE_OPENBLAS_PATH}) {
    if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    why += std::string(why.empty() ? "" : "; ") + dlerror();
  }
  if (!lib) throw std::runtime_error("cannot load OpenBLAS for host matrix products (" + why + "): install libopenblas0");
  if (auto set_threads = reinterpret_cast<void (*)(int)>(dlsym(lib, "openblas_set_num_threads"))) set_threads(1);
  auto fn = reinterpret_cast<Sgemm>(dlsym(lib, "cblas_sgemm"));
  if (!fn) throw std::runtime_error(std::string("OpenBLAS has no cblas_sgemm: ") + dlerror());
  return fn;
}

Sgemm sgemm() {
  static const Sgemm fn = load_sgemm();  // a failed load throws here, and is tried again next call
  return fn;
}

}  // namespace

extern "C" void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                            const blasint m, const blasint n, const blasint k, const float alpha, const float* a,
                            const blasint lda, const float* b, const blasint ldb, const float beta, float* c,
                            const blasint ldc) {
  sgemm()(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
