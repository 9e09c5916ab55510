#!/usr/bin/env bash
# Installs every Debian 12 package hoptrace's build, tests, benchmarks and
# demo need. Idempotent: does nothing when all are present. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # build
  build-essential cmake pkg-config git
  clang llvm libclang-rt-14-dev            # BPF target, libFuzzer runtime
  libbpf-dev bpftool libelf-dev zlib1g-dev # BPF loading, CO-RE, skeletons
  libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc  # OTLP/gRPC
  libcurl4-openssl-dev                                                   # OTLP/HTTP
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-pytest
  curl wrk nginx-light iproute2 procps util-linux
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Node.js runs the OTLP test receiver and the SDK-instrumented test service.
# Debian's nodejs/npm unless a Node is already on PATH.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

install_node_modules() {
  # Pinned by package-lock.json; from the npm registry.
  local dir=tests/integration/otlp
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    echo "setup: npm ci in $dir"
    npm ci --prefix "$dir" --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error
    touch "$dir/node_modules"
  fi
}

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  install_node_modules
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run this script as root (sudo)" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Packages that start services on install (nginx) must not: tests start
# their own instances on their own ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_node_modules
echo "setup: done"
