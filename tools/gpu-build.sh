#!/usr/bin/env bash
# Builds the GPU checks for a machine that has NVIDIA's driver, CUDA 13, cuBLAS,
# NCCL, OpenBLAS, zlib and libfmt9 but no Boost or Cap'n Proto libraries (the
# lent H100): CUDA on for sm_90, Cap'n Proto and kj linked statically, and the
# stripped binaries and the CUDA plugin (libtroupe_cuda.so, which every GPU
# path loads) copied to build-gpu/carry/, ready to be carried there
# (tools/gpu-check.sh runs them).
#
#   ./tools/gpu-build.sh [cmake targets...]   default: the GPU test suites and troupe-bench
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/lib/common.sh
ensure_packages "${TROUPE_BUILD_PACKAGES[@]}"
libdir=/usr/lib/x86_64-linux-gnu
targets=("$@")
((${#targets[@]})) || targets=(troupe_actors_tests troupe_coll_tests troupe_process_tests troupe-bench troupe_cli troupe_cuda)
# Cap'n Proto links statically by default (cmake/TroupeDependencies.cmake); said again here for old build folders.
cmake -S . -B build-gpu -DTROUPE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release -DTROUPE_BENCH_NO_CAF=ON \
  -DCapnProto_capnp_IMPORTED_LOCATION=$libdir/libcapnp.a -DCapnProto_kj_IMPORTED_LOCATION=$libdir/libkj.a >/dev/null
cmake --build build-gpu -j "${TROUPE_JOBS:-2}" --target "${targets[@]}"
rm -rf build-gpu/carry && mkdir -p build-gpu/carry
for f in build-gpu/tests/troupe_*_tests build-gpu/bin/*; do
  [[ -f $f && -x $f ]] || continue
  strip -o "build-gpu/carry/$(basename "$f")" "$f"
done

mkdir -p build-gpu/carry/lib  # the CUDA plugin (gpu-check.sh points TROUPE_CUDA_PLUGIN at it)
strip --strip-unneeded -o build-gpu/carry/lib/libtroupe_cuda.so build-gpu/lib/libtroupe_cuda.so
# Fashion-MNIST (the data-parallel GPU tests and the example run train on it).
mkdir -p build-gpu/carry/data
cp /usr/share/datasets/fashion-mnist/*.gz build-gpu/carry/data/
# What the GPU machine has: libc, libstdc++, CUDA, NCCL, OpenBLAS (dlopened), zlib, libfmt9.
if ldd build-gpu/carry/troupe* build-gpu/carry/lib/*.so 2>/dev/null | grep -E "=>" |
  grep -vE "lib(c|m|dl|rt|pthread|stdc\+\+|gcc_s|gfortran|quadmath|z|fmt|openblas|cudart|cublas|cublasLt|nccl|tomlplusplus)\.so"; then
  echo "gpu-build: a binary still needs a library the GPU machine lacks" >&2
  exit 1
fi
du -sh build-gpu/carry
