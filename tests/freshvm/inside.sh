#!/bin/bash
# Runs inside the fresh Debian 12 guest (run.sh), as its root user, from the
# clone in /root/hoptrace: the README's commands exactly as written, first as
# root on a machine without sudo (a fresh Debian set up with a root
# password), then as an ordinary user through sudo. Each step's output and
# exit status go to $HT_FRESH_OUT (a directory of the host's, shared) for
# run.sh to check, as they happen. /root/fresh-env sets HT_FRESH_OUT and
# HT_FRESH_TESTS (1: also ./scripts/test.sh, long under emulation).
. /root/fresh-env
out=$HT_FRESH_OUT
step() {  # step NAME CMD...: runs CMD, records its output, status and seconds
  local name=$1 t0 rc
  shift
  echo "fresh: $name: $*" > /dev/console
  t0=$(date +%s)
  "$@" > "$out/$name.out" 2>&1
  rc=$?
  echo "$rc $(( $(date +%s) - t0 ))" > "$out/$name.rc"
  echo "fresh: $name: rc $rc after $(( $(date +%s) - t0 )) s" > /dev/console
  return "$rc"
}
cd /root/hoptrace
{ uname -r; command -v sudo || echo "no sudo"; } > "$out/machine.txt"
# 1. root, no sudo on the machine: the README's demo command.
step demo_root ./scripts/demo.sh || exit 1
# 2. an ordinary user with sudo (the scripts call sudo themselves).
step sudo_install apt-get install -y -qq sudo || exit 1
useradd -m -s /bin/bash dev
echo "dev ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/dev
chmod o+rx /root
step demo_sudo su dev -c "cd /root/hoptrace && ./scripts/demo.sh" || exit 1
# 3. the test command, when asked (hours under emulation).
if [ "${HT_FRESH_TESTS:-0}" = 1 ]; then
  step test_root ./scripts/test.sh
fi
exit 0
