#!/usr/bin/env bash
# Installs the optional systems troupe-bench compares against: CAF 0.17
# (actors), and, for later suites, PyTorch (gloo, DDP), Gloo and OpenMPI.
# Re-run cmake afterwards so troupe-bench is rebuilt with the peers it finds.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/lib/common.sh
ensure_packages libcaf-dev python3-torch libgloo-dev openmpi-bin libopenmpi-dev
