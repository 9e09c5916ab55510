#!/usr/bin/env bash
# Builds one Go test program with the pinned toolchain:
#   tests/go/build.sh SRC_DIR OUTPUT
# The go is the one scripts/go_toolchain.sh installs (scripts/setup.sh --tests) into the
# tools cache (HOPTRACE_TOOLS); neither /usr/local/go nor PATH's go is used. GO=/path/to/go
# overrides it, but must be exactly the pinned version. GOTOOLCHAIN=local: the build never
# switches toolchains or downloads one. No module of the programs needs the network.
set -euo pipefail
GO_VERSION=go1.26.8
src=$1
out=$2
unset GOROOT
GO=${GO:-$("$(dirname "$0")/../../scripts/go_toolchain.sh" --check)}
export GOTOOLCHAIN=local
version=$("$GO" env GOVERSION)
if [ "$version" != "$GO_VERSION" ]; then
  echo "tests/go/build.sh: $GO is $version, not $GO_VERSION" >&2
  exit 1
fi
build_root=$(dirname "$(realpath -m "$out")")
mkdir -p "$build_root"
export GOCACHE=${GOCACHE:-$build_root/.gocache}
export GOPATH=${GOPATH:-$build_root/.gopath}
export GOFLAGS=-mod=mod CGO_ENABLED=0
cd "$src"
# -gcflags=-l would stop inlining everywhere; the programs mark the functions
# they time with //go:noinline instead, as a user's real functions are.
exec "$GO" build -o "$(realpath -m "$out")" .
