#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is missing, builds,
# and runs the example driver program on the embedded (in-process) runtime.
# Extra arguments go to the driver.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/lib/common.sh
ensure_packages "${TROUPE_BUILD_PACKAGES[@]}"
cmake -S . -B build >/dev/null
cmake --build build -j "${TROUPE_JOBS:-2}" --target wordcount
exec build/bin/wordcount "$@"
