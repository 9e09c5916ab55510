#!/usr/bin/env bash
# Boots one of the matrix's Debian kernels under QEMU (TCG: /dev/kvm here is
# PVM and boots only PVM guests), runs a command in it and returns the
# command's exit status. The guest runs the host's own userspace: the host's
# root shared read-only over 9p with a tmpfs overlay on top (guest writes stay
# in guest RAM), so build/agent/hoptrace, python3, curl, nginx, node, bpftool
# and the source tree are the host's, at the same paths. No network device:
# only lo and whatever namespaces/veths the command makes.
#   tests/matrix/run_vm.sh [--mem MB] [--smp N] [--timeout S] [--rw DIR]... [--disk IMG]
#                          [--net] NAME -- CMD...
# NAME: a kernel of kernels.conf (fetched and built on first use).
# --rw DIR: DIR (a host directory) is writable in the guest at the same path.
# --disk IMG: the guest's root is the ext4 file system in IMG (a whole Debian
#   with this script's guest_init.sh at /sbin/hoptrace-vm-init and the
#   kernel's modules in /lib/modules: tests/freshvm/run.sh), read-write,
#   instead of the host's; CMD runs in it as its root user.
# --net: a network card on QEMU's user-mode network (10.0.2.15, NAT to the
#   host's; DNS at 10.0.2.3), so the guest can reach Debian's mirrors.
# The command's environment: HOPTRACE_BIN, HT_MATRIX_NAME and HT_MATRIX_RESULTS
# from the caller, HT_MATRIX_VM=1, HT_VM_TIMEOUT (--timeout), and
# HOPTRACE_TEST_TIME_SCALE (the caller's, else 10: TCG is that much slower).
# Exit: the command's status; 124 on timeout; 125 if the guest never ran it.
# Prints the guest console (kernel messages quiet, the command's output) and
# a final line "run_vm: NAME boot S s, total S s, rc N".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${HOPTRACE_MATRIX_CACHE:-/var/cache/hoptrace-matrix}
mem=3072 smp=2 timeout=900 rw=() disk="" net=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mem) mem=$2; shift 2;;
    --smp) smp=$2; shift 2;;
    --timeout) timeout=$2; shift 2;;
    --rw) rw+=("$(cd "$2" && pwd)"); shift 2;;
    --disk) disk=$(realpath "$2"); shift 2;;
    --net) net=1; shift;;
    --) shift; break;;
    -*) echo "run_vm: unknown option $1" >&2; exit 2;;
    *) name=$1; shift;;
  esac
done
[ -n "${name:-}" ] && [ $# -gt 0 ] || { sed -n '2,25p' "$0" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null ||
  { echo "run_vm: qemu-system-x86_64 missing: run sudo scripts/setup-matrix.sh" >&2; exit 2; }

"$here/fetch_kernels.sh" "$name" >&2
kdir=$cache/$name
release=$(cat "$kdir/release")

ctl=$(mktemp -d /tmp/hoptrace-vm.XXXXXX)
cleanup() { rm -rf "$ctl"; }
trap cleanup EXIT
# The command as one shell script: no quoting through the kernel command line.
printf '%q ' "$@" > "$ctl/cmd"; echo >> "$ctl/cmd"
init=$here/guest_init.sh
[ -n "$disk" ] && init=/sbin/hoptrace-vm-init
{
  [ -z "$disk" ] && printf 'HT_VM_MODULES=%q\n' "$kdir/root/lib/modules/$release"
  printf 'HT_VM_NET=%q\n' "$net"
  printf 'HT_VM_CWD=%q\n' "$PWD"
  printf 'HT_VM_RW=%q\n' "${rw[*]:-}"
  # What the command needs from the caller's environment (ctest sets these).
  for v in HOPTRACE_BIN HT_MATRIX_NAME HT_MATRIX_RESULTS; do
    [ -n "${!v:-}" ] && printf 'export %s=%q\n' "$v" "${!v}"
  done
  echo "export HT_MATRIX_VM=1"
  # The guest's own deadline (cell.py writes its row before it).
  printf 'export HT_VM_TIMEOUT=%q\n' "$timeout"
  # Under TCG the guest runs at least ~10x slower than the host: the tests'
  # waits are scaled by at least this (cell.py raises it from what it
  # measures); the caller may say more.
  printf 'export HOPTRACE_TEST_TIME_SCALE=%q\n' "${HOPTRACE_TEST_TIME_SCALE:-10}"
} > "$ctl/env"

if [ -n "$disk" ]; then
  rootfs=(-drive "file=$disk,if=virtio,format=raw,cache=unsafe")
  rootmode=disk
else
  rootfs=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
  rootmode=overlay
fi
nic=(-nic none)
[ "$net" = 1 ] && nic=(-nic user,model=virtio-net-pci)
virtfs=("${rootfs[@]}"
        -virtfs "local,path=$ctl,mount_tag=ctl,security_model=none,multidevs=remap")
i=0
for d in "${rw[@]}"; do
  virtfs+=(-virtfs "local,path=$d,mount_tag=rw$i,security_model=none,multidevs=remap")
  i=$((i + 1))
done

start=$(date +%s%N)
set +e
# nice: the host's two cores are shared; TCG is all CPU.
# random.trust_cpu: TCG's -cpu max has RDRAND, so getrandom() does not block
# for minutes on a guest with no entropy.
# thread=single: the vCPUs take turns on one host thread. With one thread per
# vCPU (thread=multi), a guest once died in the middle of patching its own
# code ("Oops: int3 in try_to_wake_up", Debian 13, right after BPF programs
# were attached and a static key flipped): a vCPU ran a stale translation of
# a half-patched instruction, which TCG's handling of code one vCPU rewrites
# while another runs it does not rule out. The guest still has --smp CPUs.
# no_timer_check: the kernel's boot-time check that the IO-APIC timer ticks
# gives up when an emulated tick comes late, which it does on a busy host
# ("Kernel panic - not syncing: IO-APIC + timer doesn't work!", seen on all
# three kernels at load ~20); virtual machines skip it.
# A hung guest dies by pid, whoever gives up first: at --timeout, `timeout`
# kills its child qemu; when this script is told to stop (ctest's TIMEOUT,
# Ctrl-C), the trap kills the qemu whose pid it wrote (-pidfile); were this
# script killed outright, the parent-death signals (setpriv) take `timeout`
# and then qemu with it.
stop_vm() {
  local q
  q=$(cat "$ctl/qemu.pid" 2>/dev/null || true)
  [ -n "$q" ] && kill -KILL "$q" 2>/dev/null
  [ -n "${vm_pid:-}" ] && kill -TERM "$vm_pid" 2>/dev/null
  echo "run_vm: $name: stopped; qemu ${q:-(not started)} killed" >&2
}
trap 'stop_vm; exit 143' TERM INT HUP
setpriv --pdeathsig KILL nice -n 10 timeout --kill-after=15 "$timeout" \
  setpriv --pdeathsig KILL qemu-system-x86_64 \
  -accel tcg,thread=single -cpu max -smp "$smp" -m "$mem" \
  -kernel "$kdir/vmlinuz" -initrd "$kdir/initramfs.cpio.gz" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 random.trust_cpu=on no_timer_check htinit=$init htroot=$rootmode htrwmb=$((mem / 3))" \
  -nographic -no-reboot "${nic[@]}" -device virtio-rng-pci -pidfile "$ctl/qemu.pid" \
  "${virtfs[@]}" < /dev/null &
vm_pid=$!
wait "$vm_pid"
qrc=$?
trap - TERM INT HUP
set -e
total_ms=$((($(date +%s%N) - start) / 1000000))
total=$((total_ms / 1000)).$((total_ms % 1000 / 100))
if [ -f "$ctl/rc" ]; then
  rc=$(cat "$ctl/rc")
elif [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  echo "run_vm: $name: timed out after ${timeout}s" >&2
  rc=124
else
  echo "run_vm: $name: the guest never finished the command (qemu exit $qrc)" >&2
  rc=125
fi
boot=$(cat "$ctl/boot_seconds" 2>/dev/null || echo "?")
printf 'run_vm: %s (%s) boot %s s, total %s s, rc %s\n' "$name" "$release" "$boot" "$total" "$rc"
if [ -n "${HT_VM_TIMES:-}" ]; then
  printf '{"name": "%s", "release": "%s", "boot_s": "%s", "total_s": %s, "rc": %s}\n' \
    "$name" "$release" "$boot" "$total" "$rc" > "$HT_VM_TIMES"
fi
exit "$rc"
