# Shared by tools/*.sh: package installation and the configure/build step.

# The Debian packages the build and the test suite need (nothing more:
# benchmark peers come from tools/install-peers.sh).
TROUPE_BUILD_PACKAGES=(cmake make g++ pkg-config libboost1.81-dev capnproto libcapnp-dev libfmt-dev catch2
  libtomlplusplus-dev libopenblas-dev zlib1g-dev dataset-fashion-mnist)

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# ensure_packages PKG... : installs the ones that are missing, with one apt run.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# configure_and_build DIR [cmake args...] : configures once, builds with -j2.
configure_and_build() {
  local dir=$1
  shift
  cmake -S . -B "$dir" "$@"
  cmake --build "$dir" -j "${TROUPE_JOBS:-2}"
}
