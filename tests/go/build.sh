#!/usr/bin/env bash
# Builds one Go test program with the pinned toolchain:
#   tests/go/build.sh SRC_DIR OUTPUT
# GOTOOLCHAIN pins the version: a local go of exactly that version is used
# as is; another go (>= 1.21) fetches the pinned toolchain from the Go module
# proxy (golang.org/toolchain). No module of the programs needs the network.
set -euo pipefail
GO_VERSION=go1.26.8
src=$1
out=$2
GO=${GO:-}
if [ -z "$GO" ]; then
  GO=$(command -v go || true)
  [ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
fi
if [ -z "$GO" ]; then
  echo "tests/go/build.sh: no go toolchain found (need go >= 1.21 on PATH or in /usr/local/go)" >&2
  exit 1
fi
build_root=$(dirname "$(realpath -m "$out")")
mkdir -p "$build_root"
export GOTOOLCHAIN=$GO_VERSION
export GOCACHE=${GOCACHE:-$build_root/.gocache}
export GOPATH=${GOPATH:-$build_root/.gopath}
export GOFLAGS=-mod=mod CGO_ENABLED=0
cd "$src"
# -gcflags=-l would stop inlining everywhere; the programs mark the functions
# they time with //go:noinline instead, as a user's real functions are.
exec "$GO" build -o "$(realpath -m "$out")" .
