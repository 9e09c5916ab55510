# PID 1 of the matrix guest after switch_root, run by the host's /bin/bash on
# the host's userspace (overlaid, writable in the guest only), or by the
# guest root's own bash (run_vm.sh --root). Mounts what a
# Debian system mounts (cgroup v2 at /sys/fs/cgroup, bpffs, tracefs), lets the
# guest kernel find its own modules, runs the command run_vm.sh left in the
# control share, records its exit status and powers off, whatever happens.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
ctl=/run/hoptrace-vm

poweroff_now() {
  sync
  echo o > /proc/sysrq-trigger
  sleep 30
}
trap poweroff_now EXIT

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=000 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t bpf -o mode=700 bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
echo 1 > /proc/sys/kernel/sysrq

mkdir -p "$ctl"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 ctl "$ctl" || exit 1
echo "$(cut -d' ' -f1 /proc/uptime)" > "$ctl/boot_seconds"

# The kernel's modules (veth, sch_ingress, cls_bpf, inet_diag, ...) from the
# unpacked package in the host's cache, visible through the shared root; the
# host has no /lib/modules of this kernel, and modprobe looks there.
release=$(uname -r)
. "$ctl/env"
if [ -d "$HT_VM_MODULES" ]; then
  mkdir -p "/lib/modules/$release"
  mount --bind "$HT_VM_MODULES" "/lib/modules/$release"
fi
# Writable shares (run_vm.sh --rw DIR): the host directory at the same path.
i=0
for d in $HT_VM_RW; do
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 "rw$i" "$d" || exit 1
  i=$((i + 1))
done

ip link set lo up
if [ "${HT_VM_NET:-0}" = 1 ]; then
  # QEMU's user-mode network: fixed addresses, no DHCP client needed.
  modprobe virtio_net 2>/dev/null || true
  dev=$(ls /sys/class/net | grep -v '^lo$' | head -1)
  ip link set "$dev" up
  ip addr add 10.0.2.15/24 dev "$dev"
  ip route add default via 10.0.2.2
  echo "nameserver 10.0.2.3" > /etc/resolv.conf
fi
hostname "ht-$release"
echo "ht-guest: $(uname -r) up after $(cat "$ctl/boot_seconds") s; running: $(head -c 300 "$ctl/cmd")" > /dev/console
cd "$HT_VM_CWD" 2>/dev/null || cd /
/bin/bash "$ctl/cmd" < /dev/null > /dev/console 2>&1
echo $? > "$ctl/rc"
