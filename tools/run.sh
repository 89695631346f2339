#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is missing, builds,
# and trains an MLP on Fashion-MNIST with two data-parallel replicas on the
# embedded local cluster (examples/topologies/fashion_mnist_dp.toml): a
# progress bar, then runs/fashion_mnist_dp/{metrics.jsonl,plot.svg}.
# Extra arguments go to `troupe run` (e.g. --epochs 1, --address HOST:PORT).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/lib/common.sh
ensure_packages "${TROUPE_BUILD_PACKAGES[@]}"
cmake -S . -B build >/dev/null
cmake --build build -j "${TROUPE_JOBS:-2}" --target troupe_cli
exec build/bin/troupe run examples/topologies/fashion_mnist_dp.toml "$@"
