#!/usr/bin/env bash
# Installs every system package pretext builds, tests and benchmarks with, on Debian 12.
# Idempotent and non-interactive; works as root or through sudo.
#   scripts/install_deps.sh          build dependencies
#   scripts/install_deps.sh --test   also Python's torch and torchvision, which a test uses to load
#                                    exported encoders the way a Python user does, and pydicom
#                                    with GDCM, whose test corpus and values a DICOM test checks
#                                    pretext against
#   scripts/install_deps.sh --bench  also numpy, PIL, pydicom and Fashion-MNIST, for bench/
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache
  libtorch-dev libgloo-dev
  # Without an OpenBLAS package libblas.so.3 is netlib's reference BLAS (~3 GFLOP/s), and
  # LibTorch's Linear/matmul run through it. OpenBLAS wins the libblas.so.3 alternative; the
  # reference BLAS stays installed for the test of pretext's slow-BLAS warning.
  libopenblas0-openmp libblas3
  # DICOM: DCMTK, OpenJPEG for JPEG 2000, GDCM as the second decoder; NIfTI / NRRD / MetaImage
  # through ITK.
  libinsighttoolkit5-dev libgdcm-dev libdcmtk-dev libopenjp2-7-dev zlib1g-dev
  libgdal-dev gdal-bin libopenslide-dev libtiff-dev
  libyaml-cpp-dev libgtest-dev libgmock-dev googletest
  libcli11-dev nlohmann-json3-dev libstb-dev
)
case "${1:-}" in
  --test) packages+=(python3-torch python3-torchvision python3-pydicom python3-gdcm) ;;
  --bench) packages+=(python3-torch python3-torchvision python3-numpy python3-pil
    python3-pydicom python3-gdcm python3-openslide python3-rasterio dataset-fashion-mnist) ;;
esac

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
