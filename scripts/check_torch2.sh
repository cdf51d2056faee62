#!/usr/bin/env bash
# Proves that pretext builds and passes its whole test suite on Debian 13 (trixie), whose
# libtorch-dev is LibTorch 2.6 (with GCC 14, GDAL 3.10, ITK 5.4, DCMTK 3.6.9, yaml-cpp 0.8,
# GoogleTest 1.16 and python3-torch 2.6 for the export tests), from this Debian 12 machine:
#   scripts/check_torch2.sh [ROOT]
# makes a trixie root with debootstrap in ROOT (default /var/tmp/pretext-trixie; kept and reused,
# so a second run skips the download), copies this checkout's tracked and untracked files into
# ROOT/src/pretext, and runs the README's test command (scripts/setup.sh test) inside it. The
# build directory and ccache inside the root are kept between runs. Needs root (debootstrap,
# chroot, mount) and Debian's registry; not part of CI. Measured 2026-12-01 on 2 cores that other
# builds shared: debootstrap 3 minutes, the packages 10, the first build about 60, the tests about
# 11; a later run (root and ccache kept) 12 to 28 minutes in all; 237 of 237 tests passed.
set -euo pipefail
cd "$(dirname "$0")/.."

root=${1:-/var/tmp/pretext-trixie}
mirror=http://deb.debian.org/debian
if [[ $(id -u) -ne 0 ]]; then
  echo "check_torch2: needs root (debootstrap, chroot and mount)" >&2
  exit 2
fi
command -v debootstrap > /dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
}

if [[ ! -x "$root/usr/bin/apt-get" ]]; then
  echo "check_torch2: making a trixie root in $root"
  debootstrap --variant=minbase trixie "$root" "$mirror"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf" 2> /dev/null || true

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -R "${mounted[i]}" 2> /dev/null || true; done
}
trap cleanup EXIT
# A proc of its own (a bind of the host's showed nothing inside the root here, and UCX, which
# Debian 13's LibTorch links, then prints "failed to get boot id" into every command's output);
# sys and dev bound from the host.
if ! mountpoint -q "$root/proc"; then
  mount -t proc proc "$root/proc"
  mounted+=("$root/proc")
fi
for fs in sys dev; do
  if ! mountpoint -q "$root/$fs"; then
    mount --rbind "/$fs" "$root/$fs"
    mount --make-rslave "$root/$fs"
    mounted+=("$root/$fs")
  fi
done

# The checkout as git sees it (tracked and untracked files, not what .gitignore leaves out), so
# the run tests exactly this working tree; the root's own build/ stays for the next run. The
# copies get the time of copying (--touch): with the checkout's times, a file edited before the
# last run's build would look older than its stale object and not be rebuilt. ccache keeps the
# rebuild of unchanged files cheap.
src="$root/src/pretext"
mkdir -p "$src"
find "$src" -mindepth 1 -maxdepth 1 ! -name build -exec rm -rf {} +
git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -T - -cf - | tar -xf - --touch -C "$src"

started=$(date +%s)
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  /bin/bash -c "cd /src/pretext && scripts/setup.sh test"
echo "check_torch2: Debian 13 build and tests passed in $(($(date +%s) - started)) s"
