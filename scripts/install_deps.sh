#!/usr/bin/env bash
# Installs every system package pretext builds, tests and benchmarks with, on Debian 12.
# Idempotent and non-interactive; works as root or through sudo.
#   scripts/install_deps.sh          build + test dependencies
#   scripts/install_deps.sh --bench  also python3-torch, for the side-by-side benchmarks in bench/
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache
  libtorch-dev libgloo-dev
  # Without an OpenBLAS package libblas.so.3 is netlib's reference BLAS (~3 GFLOP/s), and
  # LibTorch's Linear/matmul run through it. OpenBLAS wins the libblas.so.3 alternative; the
  # reference BLAS stays installed for the test of pretext's slow-BLAS warning.
  libopenblas0-openmp libblas3
  libinsighttoolkit5-dev libgdal-dev gdal-bin libopenslide-dev libdcmtk-dev
  libyaml-cpp-dev libgtest-dev libgmock-dev googletest
  libcli11-dev nlohmann-json3-dev libstb-dev
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-torch python3-numpy)
fi

if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
