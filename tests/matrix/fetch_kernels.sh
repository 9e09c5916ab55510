#!/usr/bin/env bash
# Downloads the pinned Debian kernels (kernels.conf), verifies them, unpacks
# vmlinuz and the module tree, and builds each kernel's initramfs (busybox +
# the few modules needed to mount the root, initramfs_init.sh).
#   tests/matrix/fetch_kernels.sh [NAME...]     # default: every kernel in kernels.conf
#   tests/matrix/fetch_kernels.sh --show-latest # what Debian's archive serves now
# Cache: $HOPTRACE_MATRIX_CACHE (default /var/cache/hoptrace-matrix), outside
# the source tree; nothing downloaded is ever committed. Idempotent: a kernel
# already unpacked and verified costs a stat; the initramfs is rebuilt when
# initramfs_init.sh changes.
# Needs scripts/setup-matrix.sh (busybox-static, cpio, kmod, xz-utils, zstd).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${HOPTRACE_MATRIX_CACHE:-/var/cache/hoptrace-matrix}
conf=$here/kernels.conf

die() { echo "fetch_kernels: $*" >&2; exit 1; }

if [ "${1:-}" = "--show-latest" ]; then
  # A private apt state under the cache: the host's own apt is not touched.
  a=$cache/apt
  mkdir -p "$a/lists/partial" "$a/archives/partial"
  for s in bullseye bookworm trixie; do
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $s main"
  done > "$a/sources.list"
  opts=(-o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts=/nonexistent
        -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a" -o Dir::State::status=/dev/null
        -o APT::Architecture=amd64 -o Acquire::Languages=none)
  apt-get "${opts[@]}" update -qq
  for pkg in $(apt-cache "${opts[@]}" search --names-only '^linux-image-[0-9].*-amd64-unsigned$' |
               awk '!/cloud|rt-amd64/ {print $1}'); do
    apt-cache "${opts[@]}" show "$pkg" | awk '/^(Filename|SHA256):/ {printf "%s ", $2} END {print ""}'
  done
  exit 0
fi

for tool in busybox cpio depmod modinfo xz zstd dpkg-deb curl sha256sum; do
  command -v "$tool" >/dev/null || die "$tool missing: run sudo scripts/setup-matrix.sh"
done
[ -x /bin/busybox ] && file_static=$(ldd /bin/busybox 2>&1 || true)
case "${file_static:-}" in *"not a dynamic"*) ;; *) die "/bin/busybox is not static: run sudo scripts/setup-matrix.sh";; esac

# Modules the initramfs loads to mount the root (virtio PCI transport, 9p over
# virtio, overlayfs; virtio-rng, as nothing autoloads drivers without udev); everything else the guest loads on demand from the full
# tree, which the guest sees through the shared root.
# virtio_blk, crc32c_generic and ext4: the root on a disk (run_vm.sh --disk);
# crc32c is asked for by name at mount, with nothing to load it on demand.
INIT_MODULES=(virtio_pci virtio_rng 9pnet_virtio 9p overlay virtio_blk crc32c_generic ext4)

fetch_one() {
  local name=$1 line release path sum deb url dir ver
  line=$(awk -v n="$name" '$1 == n' "$conf")
  [ -n "$line" ] || die "no kernel named '$name' in $conf"
  read -r _ release path sum <<<"$line"
  dir=$cache/$name
  mkdir -p "$cache/debs" "$dir"
  deb=$cache/debs/$(basename "$path")

  if [ ! -f "$dir/vmlinuz" ] || [ "$(cat "$dir/sha256" 2>/dev/null)" != "$sum" ]; then
    if [ ! -f "$deb" ] || ! echo "$sum  $deb" | sha256sum -c --quiet - 2>/dev/null; then
      rm -f "$deb"
      for url in "https://deb.debian.org/debian/$path" \
                 "https://snapshot.debian.org/archive/debian/now/$path"; do
        echo "fetch_kernels: $name: downloading $url"
        curl -fL --retry 3 -o "$deb.part" "$url" && mv "$deb.part" "$deb" && break
        rm -f "$deb.part"
      done
      [ -f "$deb" ] || die "$name: download failed"
    fi
    echo "$sum  $deb" | sha256sum -c --quiet - || die "$name: checksum mismatch for $deb"
    echo "fetch_kernels: $name: unpacking $(basename "$deb")"
    rm -rf "$dir/root"
    mkdir -p "$dir/root"
    dpkg-deb -x "$deb" "$dir/root"
    # Only the kernel and its modules are needed; the rest (docs, firmware
    # lists) goes.
    # Trixie's packages are merged-/usr: modules under usr/lib/modules.
    if [ -d "$dir/root/usr/lib/modules" ]; then
      mkdir -p "$dir/root/lib"
      mv "$dir/root/usr/lib/modules" "$dir/root/lib/modules"
    fi
    ver=$(ls "$dir/root/lib/modules")
    find "$dir/root" -mindepth 1 -maxdepth 1 ! -name lib ! -name boot -exec rm -rf {} +
    cp "$dir/root/boot/vmlinuz-$ver" "$dir/vmlinuz"
    rm -rf "$dir/root/boot"
    # The package ships no modules.dep (the postinst runs depmod): build it so
    # the guest's modprobe finds veth, sch_ingress, cls_bpf, ... on demand.
    depmod -b "$dir/root" "$ver"
    echo "$ver" > "$dir/release"
    echo "$release" > "$dir/debian-release"
    echo "$sum" > "$dir/sha256"
    rm -f "$dir/initramfs.cpio.gz"
  fi

  if [ ! -f "$dir/initramfs.cpio.gz" ] || [ "$here/initramfs_init.sh" -nt "$dir/initramfs.cpio.gz" ] ||
     [ "$0" -nt "$dir/initramfs.cpio.gz" ]; then
    build_initramfs "$name" "$dir"
  fi
  echo "fetch_kernels: $name: $(cat "$dir/release") ready in $dir"
}

# Post-order walk of the modules' dependencies: each module after what it needs.
resolve() {
  local root=$1 ver=$2 m=$3 dep
  case " $seen " in *" $m "*) return;; esac
  seen="$seen $m "
  if grep -qE "/${m//_/[_-]}\.ko" "$root/lib/modules/$ver/modules.builtin"; then return; fi
  for dep in $(modinfo -b "$root" -k "$ver" -F depends "$m" | tr ',' ' '); do
    resolve "$root" "$ver" "$dep"
  done
  order+=("$m")
}

build_initramfs() {
  local name=$1 dir=$2 ver stage m f
  ver=$(cat "$dir/release")
  stage=$(mktemp -d)
  mkdir -p "$stage"/{bin,dev,proc,sys,mnt,newroot,lib/modules}
  cp /bin/busybox "$stage/bin/busybox"
  # The kernel opens /dev/console for init's stdio before anything is mounted.
  mknod -m 600 "$stage/dev/console" c 5 1
  cp "$here/initramfs_init.sh" "$stage/init"
  chmod +x "$stage/init"
  seen="" order=()
  for m in "${INIT_MODULES[@]}"; do resolve "$dir/root" "$ver" "$m"; done
  : > "$stage/lib/modules/load-order"
  for m in "${order[@]}"; do
    f=$(modinfo -b "$dir/root" -k "$ver" -F filename "$m")
    # busybox insmod takes plain .ko only.
    case "$f" in
      *.ko.xz)  xz -dc "$f" > "$stage/lib/modules/$m.ko";;
      *.ko.zst) zstd -qdc "$f" > "$stage/lib/modules/$m.ko";;
      *.ko)     cp "$f" "$stage/lib/modules/$m.ko";;
      *) die "$name: module $m: unexpected file $f";;
    esac
    echo "$m" >> "$stage/lib/modules/load-order"
  done
  (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$dir/initramfs.cpio.gz"
  rm -rf "$stage"
  echo "fetch_kernels: $name: initramfs with modules: ${order[*]}"
}

names=("$@")
[ "${#names[@]}" -gt 0 ] || mapfile -t names < <(awk '!/^#/ && NF {print $1}' "$conf")
for n in "${names[@]}"; do fetch_one "$n"; done
