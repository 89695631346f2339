#!/usr/bin/env bash
# The container deployment, run for real as far as one machine can: builds
# deploy/docker's image from the Debian packages CPack makes (with docker, or
# podman where docker is not installed), then starts what
# deploy/k8s/troupe.yaml starts, with the manifest's commands, each in a
# container of its own on one container network: the head (its Service name
# troupe-head), a node daemon, and the training Job's `troupe run` of the
# manifest's topology (sized for CPUs). The token goes in as the Secret puts
# it (TROUPE_TOKEN); emptyDir volumes are tmpfs mounts. It checks that the
# node joins, that the run trains and finishes, `troupe status` and /metrics
# from the head's container, and that `troupe stop` ends the head and node.
#
#   deploy/check.sh [BUILD_DIR]    default: build-cpu if there is one, else build
#
# The base image debian:12 is pulled if it is not there; offline, set
# TROUPE_BASE_ROOTFS to a Debian 12 root (debootstrap bookworm DIR) and it is
# imported as debian:12. Not part of tools/test.sh: it needs a container
# engine, which the test command does not install.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-}
if [[ -z $build ]]; then [[ -d build-cpu ]] && build=build-cpu || build=build; fi
[[ -f $build/CMakeCache.txt ]] || { echo "deploy/check.sh: $build is not a configured build folder"; exit 2; }
engine=
for e in docker podman; do  # one that answers (a docker CLI without its daemon does not)
  if command -v "$e" >/dev/null && $e info >/dev/null 2>&1; then engine=$e; break; fi
done
[[ -n $engine ]] || { echo "deploy/check.sh: no working docker or podman (apt-get install podman)"; exit 2; }

net=troupe-check-$$
tag=troupe:check
names=(troupe-train troupe-node troupe-head)
remove_containers() {
  for n in "${names[@]}"; do $engine rm -f "$n" >/dev/null 2>&1 || true; done
}
remove_containers  # left by an earlier run
work=$(mktemp -d /tmp/troupe-deploy.XXXX)
trap 'remove_containers; $engine network rm "$net" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
fail() {
  echo "deploy/check.sh: FAILED: $*"
  for n in "${names[@]}"; do
    echo "--- logs of $n:"
    $engine logs "$n" 2>&1 | tail -n 20 || true
  done
  exit 1
}
step() { echo "== $*"; }

step "$engine $($engine --version | awk '{print $NF}'); Debian packages from $build (cpack -G DEB)"
cmake --build "$build" -j"${TROUPE_JOBS:-2}" >/dev/null
(cd "$build" && cpack -G DEB -B "$work/debs" >/dev/null)
cp deploy/docker/Dockerfile "$work/"
cp "$work"/debs/troupe_*_amd64.deb "$work/"
ls "$work"/troupe_*_amd64.deb

step "the manifest against the Kubernetes API's schema (deploy/k8s/validate.sh)"
if command -v node >/dev/null && command -v npm >/dev/null; then
  deploy/k8s/validate.sh || fail "deploy/k8s/troupe.yaml is not valid (above)"
else
  echo "skipped: no node and npm (apt-get install nodejs npm)"
fi

step "the base image debian:12"
if ! $engine image inspect debian:12 >/dev/null 2>&1; then
  if ! $engine pull -q docker.io/library/debian:12 >/dev/null 2>&1; then
    [[ -n ${TROUPE_BASE_ROOTFS:-} && -d ${TROUPE_BASE_ROOTFS}/usr ]] ||
      fail "cannot pull debian:12 (offline?); set TROUPE_BASE_ROOTFS to a Debian 12 root (debootstrap bookworm DIR)"
    tar -C "$TROUPE_BASE_ROOTFS" -c . | $engine import - debian:12 >/dev/null
    echo "imported $TROUPE_BASE_ROOTFS as debian:12"
  fi
fi

step "the image (deploy/docker/Dockerfile)"
$engine build -q -t "$tag" "$work" >/dev/null || fail "the image did not build"
$engine run --rm "$tag" troupe --help >/dev/null || fail "troupe does not run in the image"

step "the head, as the Deployment runs it"
token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
$engine network create "$net" >/dev/null
$engine run -d --name troupe-head --network "$net" -e TROUPE_TOKEN="$token" --tmpfs /var/lib/troupe:mode=1777 "$tag" \
  troupe-daemon --head --bind 0.0.0.0 --port 6380 --metrics-port 9090 \
  --token-file /var/lib/troupe/cluster.token --resources CPU=0,memory=0,GPU=0 >/dev/null
in_head() { $engine exec -e TROUPE_TOKEN="$token" troupe-head "$@"; }
status() { in_head troupe status --json --address 127.0.0.1:6380 2>/dev/null || true; }
for _ in $(seq 100); do
  [[ $(status) == *'"healthy":true'* ]] && break
  sleep 0.2  # polling a container's start-up: there is no event to wait on
done
[[ $(status) == *'"healthy":true'* ]] || fail "the head did not come up"

step "a node daemon, as the DaemonSet runs it (2 CPUs, 4 GiB)"
$engine run -d --name troupe-node --network "$net" -e TROUPE_TOKEN="$token" -e TROUPE_CPUS=2 \
  -e TROUPE_MEMORY=$((4 << 30)) --tmpfs /var/lib/troupe:mode=1777 --tmpfs /var/log/troupe:mode=1777 \
  --shm-size 1g "$tag" sh -c 'exec troupe-daemon --address troupe-head:6380 --token-file /var/lib/troupe/cluster.token --log-dir /var/log/troupe --resources CPU=$TROUPE_CPUS,memory=$TROUPE_MEMORY' \
  >/dev/null
for _ in $(seq 150); do
  [[ $(status) == *'"nodes_alive":2'* ]] && break
  sleep 0.2
done
[[ $(status) == *'"nodes_alive":2'* ]] || fail "the node did not join the head: $(status)"
$engine logs troupe-node 2>&1 | grep -q "CPU=2, GPU=0, memory=4.0 GiB" || fail "the node did not take its pod's CPUs and memory"

step "the training Job's driver: troupe run of the manifest's topology (CPU-sized)"
# The ConfigMap's topology with CPUs for GPUs and a short run.
awk '/^  train.toml: \|/{on=1; next} on && /^---/{exit} on{sub(/^    /, ""); print}' deploy/k8s/troupe.yaml |
  sed -e 's/^gpus = 1/gpus = 0/' -e 's/^replicas = 8/replicas = 2/' -e 's/^epochs = 8/epochs = 1/' \
    -e 's/^\[model\]/[data]\ntrain_limit = 12800\neval_limit = 1000\n[model]/' >"$work/train.toml"
grep -q 'address = "troupe-head:6380"' "$work/train.toml" || fail "no topology found in deploy/k8s/troupe.yaml"
if ! $engine run --name troupe-train --network "$net" -e TROUPE_TOKEN="$token" \
  -v "$work/train.toml:/etc/troupe/train.toml:ro" "$tag" troupe run /etc/troupe/train.toml --quiet \
  >"$work/train.log" 2>&1; then
  cat "$work/train.log"
  fail "the training run failed"
fi
tail -n 3 "$work/train.log"
grep -q "accuracy" "$work/train.log" || fail "the run printed no accuracy"
[[ $(status) == *'"state":"finished"'* ]] || fail "the head does not list the job as finished: $(status)"

step "/metrics from the head's container"
metrics=$(in_head bash -c 'exec 3<>/dev/tcp/127.0.0.1/9090; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3')
[[ $metrics == *'troupe_nodes{state="alive"} 2'* ]] || fail "/metrics: $metrics"

step "troupe stop ends the node daemon and the head"
in_head troupe stop --address 127.0.0.1:6380 >/dev/null || fail "troupe stop failed"
for n in troupe-node troupe-head; do
  code=$($engine wait "$n")
  [[ $code == 0 ]] || fail "$n exited $code after troupe stop"
done
echo "deploy/check.sh: the image built, a node joined, the job trained and finished, the cluster stopped ($engine)"
