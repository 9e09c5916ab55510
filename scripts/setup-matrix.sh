#!/usr/bin/env bash
# Optional: what the kernel matrix (tests/matrix, ctest -L matrix) needs on top
# of scripts/setup.sh. Kept apart so the demo and the ordinary tests do not pull
# in an emulator. Debian 12 packages only. Idempotent. Run as root.
#   qemu-system-x86  boots Debian's stock kernels under TCG (/dev/kvm here is PVM)
#   busybox-static   the guest's init and tools before the host's userspace is mounted
#   cpio zstd xz-utils  unpack .deb payloads and kernel modules, pack the initramfs
#   kmod             modinfo: resolve the modules' dependencies from the guest kernel's tree
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --tests   # the matrix runs the propagation tests: pytest, nginx, node

PACKAGES=(qemu-system-x86 busybox-static cpio zstd xz-utils kmod binutils curl ca-certificates)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-matrix: all ${#PACKAGES[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-matrix: missing packages: ${missing[*]}; run this script as root (sudo)" >&2
  exit 1
fi
echo "setup-matrix: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup-matrix: done"
