#!/usr/bin/env bash
# The GPU check on a machine that has a CUDA build of PyTorch and nothing else pretext needs (no
# GDAL, ITK, DCMTK or OpenSlide):
#   bench/gpu_check.sh [gpu_check flags]      e.g. --size 224 --batch 32 --steps 10
# builds the torch-only targets against that torch's LibTorch (torch.utils.cmake_prefix_path) in
# build-gpu/ and runs gpu_check on cuda, its Python half with the same interpreter ($PYTHON,
# default python3). About 3 minutes of build with ninja on 16 cores, then 2-4 of checks.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
cmake -S . -B build-gpu "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DPRETEXT_CORE_ONLY=ON \
  -DPRETEXT_TESTS=OFF -DCMAKE_PREFIX_PATH="$prefix"
cmake --build build-gpu --target gpu_check --parallel
build-gpu/gpu_check --device cuda --python "$python" "$@"
