#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (apt), builds troupe and runs the test suite.
#
#   ./tools/test.sh            the normal build (build/), every suite; where the
#                              CUDA toolkit is installed that build has the CUDA
#                              plugin, and a CPU-only build (build-cpu/,
#                              -DTROUPE_CUDA=OFF) runs every suite too
#   ./tools/test.sh --asan     AddressSanitizer + UBSan build (build-asan/)
#   ./tools/test.sh --tsan     ThreadSanitizer build (build-tsan/)
#   extra arguments go to ctest, e.g. ./tools/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/lib/common.sh

dirs=(build)
cmake_args=()
case "${1:-}" in
  --asan) dirs=(build-asan); cmake_args=(-DTROUPE_ASAN=ON -DCMAKE_BUILD_TYPE=Debug); shift ;;
  --tsan) dirs=(build-tsan); cmake_args=(-DTROUPE_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo); shift ;;
  *) [[ -x /usr/local/cuda/bin/nvcc ]] && dirs+=(build-cpu) ;;
esac

ensure_packages "${TROUPE_BUILD_PACKAGES[@]}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tools/tsan.supp}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
for dir in "${dirs[@]}"; do
  extra=()
  [[ $dir == build-cpu ]] && extra=(-DTROUPE_CUDA=OFF)
  echo "== $dir ${cmake_args[*]} ${extra[*]}"
  configure_and_build "$dir" -DTROUPE_BUILD_TESTS=ON "${cmake_args[@]}" "${extra[@]}"
  ctest --test-dir "$dir" --output-on-failure -j "${TROUPE_JOBS:-2}" "$@"
done
