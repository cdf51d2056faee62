#!/usr/bin/env bash
# The README's two set-up commands, for a fresh Debian 12 machine:
#   scripts/setup.sh demo   install dependencies, build pretext, run the demo
#   scripts/setup.sh test   install dependencies, build everything, run the whole test suite
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  demo | test) ;;
  *)
    echo "usage: scripts/setup.sh demo|test" >&2
    exit 2
    ;;
esac

if [[ "$1" == demo ]]; then scripts/install_deps.sh; else scripts/install_deps.sh --test; fi
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
if [[ "$1" == demo ]]; then
  cmake --build build -j "$jobs" --target pretext
  build/pretext demo
else
  cmake --build build -j "$jobs"
  ctest --test-dir build --output-on-failure -j "$jobs"
fi
