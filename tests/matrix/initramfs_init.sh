#!/bin/busybox sh
# PID 1 of the matrix guest's initramfs (busybox). Loads the modules the root
# needs, mounts the host's root (9p, read-only) under a tmpfs overlay so the
# guest may write anywhere without touching the host, and hands over to
# guest_init.sh from the host's own userspace. Parameters come from the kernel
# command line as environment variables (no dot in the name, so the kernel
# passes them to init): htinit= (guest init path), htrwmb= (overlay tmpfs size),
# htroot= (overlay: the host's root under a tmpfs overlay; disk: the ext4
# file system on the first virtio disk, run_vm.sh --disk).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
  echo "ht-initramfs: $*" > /dev/console
  echo 1 > /proc/sys/kernel/sysrq
  # No shell to drop into: nobody is watching. Power off so the host sees
  # the failure now instead of at its timeout.
  echo o > /proc/sysrq-trigger
  sleep 5
}

for m in $(cat /lib/modules/load-order); do
  insmod /lib/modules/$m.ko || fail "insmod $m failed"
done

if [ "${htroot:-overlay}" = disk ]; then
  mount -t ext4 /dev/vda /newroot || fail "mounting the guest's disk (/dev/vda) failed"
  umount /proc /sys
  umount /dev
  [ -f "/newroot$htinit" ] || fail "guest init $htinit not found in the guest's root"
  exec switch_root /newroot /bin/bash "$htinit"
fi
mkdir -p /mnt/lower /mnt/rw
# cache=loose: the lower layer is read-only and does not change during a run,
# and without a page cache every exec of python3 goes to the host over 9p.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /mnt/lower ||
  fail "mounting the host root over 9p failed"
mount -t tmpfs -o size=${htrwmb:-1024}m,mode=755 rw /mnt/rw
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /newroot ||
  fail "overlay over the host root failed"
umount /proc /sys
umount /dev
[ -f "/newroot$htinit" ] || fail "guest init $htinit not found in the host root"
exec switch_root /newroot /bin/bash "$htinit"
