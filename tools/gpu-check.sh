#!/usr/bin/env bash
# Runs on the lent GPU machine (tools/gpu-build.sh first, then carry
# build-gpu/carry there): the gpu-labelled suites, then the GPU benchmarks.
# Prints everything; a copy goes to $OUT/gpu-check.log when $OUT is set.
#   tools/gpu-check.sh [tests|bench|all] (default all)
set -uo pipefail
cd "$(dirname "$0")/.."
bin=build-gpu/carry
log=${OUT:-/tmp}/gpu-check.log
what=${1:-all}
export TROUPE_SOURCE_DIR=$PWD TROUPE_PYTHON=${TROUPE_PYTHON:-python3}
export TROUPE_FASHION_MNIST=$PWD/$bin/data  # carried: no dataset package there
export TROUPE_CUDA_PLUGIN=$PWD/$bin/lib/libtroupe_cuda.so  # every GPU path loads it
{
  echo "== $(date -u) $(nvidia-smi -L 2>&1 | head -2)"
  nvidia-smi --query-gpu=driver_version,memory.total --format=csv,noheader 2>&1
  rc=0
  if [[ $what == tests || $what == all ]]; then
    for t in "$bin"/troupe_*_tests; do
      echo "== $(basename "$t") [gpu]"
      timeout 180 "$t" "[gpu]" || rc=1
    done
    echo "== troupe_actors_tests [gpu], sgemm path (TROUPE_CUBLASLT=0)"
    TROUPE_CUBLASLT=0 timeout 120 "$bin/troupe_actors_tests" "[gpu]" || rc=1
    if command -v compute-sanitizer >/dev/null; then
      echo "== compute-sanitizer memcheck: actors [gpu]"
      # API errors are not reported: the graph test provokes two on purpose (a cudaMalloc
      # inside a capture) and every call is checked by the code anyway.
      # [slow]: the half-precision training runs (thousands of steps) are left out.
      timeout 120 compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 9 "$bin/troupe_actors_tests" "[gpu]~[slow]" | tail -5 || rc=1
    fi
  fi
  if [[ $what == bench || $what == all ]]; then
    echo "== troupe-bench step"
    timeout 200 "$bin/troupe-bench" step --threads 1 --seconds 1 || rc=1
    echo "== troupe run examples/topologies/fashion_mnist_dp_gpu.toml (2 GPU replicas sharing the GPU)"
    rm -rf runs/fashion_mnist_dp_gpu
    timeout 240 "$bin/troupe" run examples/topologies/fashion_mnist_dp_gpu.toml 2>&1 | tr '\r' '\n' | grep -vE "^\s*$" | tail -4 || rc=1
    for p in bf16 f16; do
      echo "== the same topology with precision = \"$p\""
      sed -e "s/^precision = \"f32\"/precision = \"$p\"/" -e "s/fashion_mnist_dp_gpu/fashion_mnist_dp_gpu_$p/g" \
        examples/topologies/fashion_mnist_dp_gpu.toml > "/tmp/dp_gpu_$p.toml"
      grep -q "precision = \"$p\"" "/tmp/dp_gpu_$p.toml" || { echo "gpu-check: no precision key to set"; rc=1; }
      rm -rf "runs/fashion_mnist_dp_gpu_$p"
      timeout 240 "$bin/troupe" run "/tmp/dp_gpu_$p.toml" 2>&1 | tr '\r' '\n' | grep -vE "^\s*$" | tail -2 || rc=1
    done
    if "$bin/troupe-bench" --help 2>&1 | grep -q allreduce-gpu; then
      echo "== troupe-bench allreduce-gpu"
      timeout 200 "$bin/troupe-bench" allreduce-gpu || rc=1
    fi
  fi
  echo "== gpu-check exit $rc"
} 2>&1 | tee "$log"
