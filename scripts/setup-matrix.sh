#!/usr/bin/env bash
# What the kernel matrix (tests/matrix, ctest -L matrix) needs on top of
# scripts/setup.sh: the packages below, then the matrix's kernels (Debian's
# own packages, pinned by SHA-256 in tests/matrix/kernels.conf, unpacked into
# /var/cache/hoptrace-matrix by tests/matrix/fetch_kernels.sh). Called by
# scripts/test.sh; kept apart from setup.sh so the demo does not pull in an
# emulator. Debian 12 packages only. Idempotent. Run as root.
#   qemu-system-x86  boots Debian's stock kernels under TCG (/dev/kvm here is PVM)
#   busybox-static   the guest's init and tools before the host's userspace is mounted
#   cpio zstd xz-utils  unpack .deb payloads and kernel modules, pack the initramfs
#   kmod             modinfo: resolve the modules' dependencies from the guest kernel's tree
#   debootstrap      the fresh Debian 12 root of the opt-in fresh-machine run (tests/freshvm)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --tests   # the matrix runs the propagation tests: pytest, nginx, node

PACKAGES=(qemu-system-x86 busybox-static cpio zstd xz-utils kmod binutils curl ca-certificates debootstrap)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-matrix: all ${#PACKAGES[@]} packages present"
else
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-matrix: missing packages: ${missing[*]}; run this script as root (sudo)" >&2
    exit 1
  fi
  echo "setup-matrix: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The kernels: a verified, unpacked kernel costs a stat.
tests/matrix/fetch_kernels.sh
echo "setup-matrix: done"
