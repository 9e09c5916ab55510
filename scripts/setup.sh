#!/usr/bin/env bash
# Installs the Debian 12 packages hoptrace needs. Idempotent: does nothing
# when everything is present. Run as root.
#   scripts/setup.sh            # build + demo (all the demo uses)
#   scripts/setup.sh --tests    # also tests, benchmarks, their npm packages, the pinned Go
#                               # (scripts/go_toolchain.sh) and the Kubernetes tools
#   scripts/setup.sh --image    # also the image's builder and runtime (buildah, podman, runc)
#                               # and its base from Debian's archive (scripts/image_base.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

tests=0
image=0
for a in "$@"; do
  case "$a" in
    --tests) tests=1 ;;
    --image) image=1 ;;
    *) echo "setup: unknown argument $a (use --tests, --image)" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  # build
  build-essential cmake pkg-config git
  clang llvm libclang-rt-14-dev            # BPF target, libFuzzer runtime
  libbpf-dev bpftool libelf-dev zlib1g-dev # BPF loading, CO-RE, skeletons
  libcapstone-dev                          # uprobes/: return instructions by disassembly
  libdw-dev                                # uprobes/: functions' source file and line (DWARF)
  libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc  # OTLP/gRPC
  libcurl4-openssl-dev                                                   # OTLP/HTTP
  # the build compiles the unit tests and benchmarks too
  libgtest-dev libgmock-dev libbenchmark-dev
  # the demo's services and client
  python3 curl iproute2 procps
)
TEST_PACKAGES=(
  python3-pytest python3-aiohttp wrk nginx-light util-linux  # aiohttp: the W3C suite harness
  python3-grpcio nghttp2-server  # HTTP/2: gRPC services and clients, a cleartext h2 server
  # h2 4.1 (bookworm's 4.1.0-4): the h2c server that accepts "Upgrade: h2c" (nghttpd does not)
  python3-h2
  # Go: the pinned toolchain (tests/go programs, helm, kube-apiserver) comes from the Go
  # module proxy by scripts/go_toolchain.sh, which unpacks it with unzip (Debian's golang
  # is too old).
  unzip
  # Kubernetes tests: a real API server over etcd (certificates made by openssl), the chart's
  # rendered objects checked against the API's schemas; helm and kube-apiserver themselves
  # are built from the Go module proxy by scripts/k8s_tools.sh.
  # openssl: the Kubernetes and TLS tests make their certificates with the CLI
  etcd-server openssl python3-yaml python3-jsonschema
  # PostgreSQL and Redis tests: servers, their CLIs, Python clients (psycopg2 speaks the simple
  # query protocol, psycopg 3 the extended one with named prepared statements), benchmarks
  postgresql-15 postgresql-client-15 python3-psycopg2 python3-psycopg
  redis-server redis-tools python3-redis
  # Python server models of test_propagation_models (runtime context, issue 11), bookworm's:
  # fastapi 0.92, starlette 0.26, anyio 3.6, uvicorn 0.17 (h11 0.14), httpx 0.23, flask 2.2,
  # django 3.2, gunicorn 20.1 (aiohttp 3.8 above)
  python3-fastapi python3-uvicorn python3-httpx python3-flask python3-django gunicorn
  # benchmarks: the agent's instructions per request under callgrind (this PVM guest has no
  # hardware counters for perf stat), tests/bench/agent_instructions.sh; perf for CPU time
  valgrind linux-perf
)
# The image (Containerfile, tests/integration/test_image.py): built without a daemon and run
# without one, at Debian 12's versions, pinned. runc, not crun: Debian 12's crun (1.8.1)
# refuses a hybrid cgroup layout whose v2 hierarchy has a controller (hosts booted with
# systemd's hybrid mode); runc runs there and on pure v2 alike. debootstrap: the base image
# where no container registry is reachable (scripts/image_base.sh).
IMAGE_PACKAGES=(
  buildah=1.28.2+ds1-3+deb12u1+b3 podman=4.3.1+ds1-8+deb12u1+b3 runc=1.1.5+ds1-1+deb12u1
  crun=1.8.1-1+deb12u1 debootstrap bpftool
)
[ "$tests" = 1 ] && PACKAGES+=("${TEST_PACKAGES[@]}")
[ "$image" = 1 ] && PACKAGES+=("${IMAGE_PACKAGES[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  name=${p%%=*}
  if ! dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  elif [ "$name" != "$p" ] && [ "$(dpkg-query -W -f='${Version}' "$name")" != "${p#*=}" ]; then
    missing+=("$p")  # pinned, and another version is installed
  fi
done

# Node.js runs the OTLP test receiver and the SDK-instrumented test service
# (tests only). Debian's nodejs/npm unless a Node is already on PATH.
if [ "$tests" = 1 ]; then
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
fi

install_node_modules() {
  [ "$tests" = 1 ] || return 0
  # Pinned by package-lock.json; from the npm registry.
  local dir=tests/integration/otlp
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    echo "setup: npm ci in $dir"
    if ! npm ci --prefix "$dir" --prefer-offline --ignore-scripts --no-audit --no-fund \
         --loglevel=error; then
      echo "setup: npm ci failed (is the npm registry reachable?); the OTLP tests need it" >&2
      exit 1
    fi
    touch "$dir/node_modules"
  fi
}

install_go_toolchain() {
  [ "$tests" = 1 ] || return 0
  # Pinned (version and SHA-256) into /var/cache/hoptrace-tools (HOPTRACE_TOOLS).
  local go
  go=$(./scripts/go_toolchain.sh)
  echo "setup: Go toolchain $go"
}

install_k8s_tools() {
  [ "$tests" = 1 ] || return 0
  ./scripts/k8s_tools.sh
}

make_image_base() {
  [ "$image" = 1 ] || return 0
  ./scripts/image_base.sh
}

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  install_node_modules
  install_go_toolchain
  install_k8s_tools
  make_image_base
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run this script as root" >&2
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
install_go_toolchain
install_k8s_tools
make_image_base
echo "setup: done"
