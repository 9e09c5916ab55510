#!/usr/bin/env bash
# Installs the pinned Go toolchain the tests build with (tests/go/build.sh) and
# scripts/k8s_tools.sh builds helm and kube-apiserver with, into a cache outside
# the tree: $HOPTRACE_TOOLS/go1.26.8 (default /var/cache/hoptrace-tools/go1.26.8).
# Needs no Go on the machine: it fetches the toolchain the Go module proxy publishes
# as the module golang.org/toolchain (GitHub and go.dev need not be reachable),
# checks the zip against the SHA-256 pinned below, and unpacks it with unzip.
# Idempotent: when the toolchain is there it downloads nothing.
#   scripts/go_toolchain.sh          # install if missing; print the go binary's path
#   scripts/go_toolchain.sh --check  # print the path if installed, else fail (no download)
# stdout is only that path, so callers do  GO=$(scripts/go_toolchain.sh)
# and run "$GO" (GOROOT unset: the go binary finds its own tree).
# Called by scripts/setup.sh --tests; needs curl, unzip, sha256sum. Uses no python.
set -euo pipefail

GO_VERSION=go1.26.8
MOD_VERSION=v0.0.1-$GO_VERSION.linux-amd64
# sha256sum of $PROXY/golang.org/toolchain/@v/$MOD_VERSION.zip (71680185 bytes)
ZIP_SHA256=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
PROXY=${HOPTRACE_GO_PROXY:-https://proxy.golang.org}
TOOLS=${HOPTRACE_TOOLS:-/var/cache/hoptrace-tools}
dest=$TOOLS/$GO_VERSION
go=$dest/bin/go

installed() {
  [ -x "$go" ] && [ "$(head -n1 "$dest/VERSION" 2>/dev/null)" = "$GO_VERSION" ]
}

check=0
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    *) echo "go_toolchain: unknown argument $a (use --check)" >&2; exit 2 ;;
  esac
done

if installed; then
  echo "$go"
  exit 0
fi
if [ "$check" = 1 ]; then
  echo "go_toolchain: $GO_VERSION is not in $dest: run scripts/setup.sh --tests" \
       "(or scripts/go_toolchain.sh)" >&2
  exit 1
fi
if [ "$(uname -m)" != x86_64 ]; then
  echo "go_toolchain: only linux-amd64 is pinned (this machine is $(uname -m))" >&2
  exit 1
fi
for t in curl unzip sha256sum; do
  command -v "$t" >/dev/null 2>&1 || { echo "go_toolchain: $t is needed" >&2; exit 1; }
done

mkdir -p "$TOOLS"
# Unpacked beside the destination and moved there whole: a go binary at $dest is
# always a complete toolchain, even after an interrupted run.
tmp=$(mktemp -d "$TOOLS/.$GO_VERSION.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
url=$PROXY/golang.org/toolchain/@v/$MOD_VERSION.zip
echo "go_toolchain: fetching $url" >&2
curl -fsSL --retry 3 -o "$tmp/go.zip" "$url"
if ! echo "$ZIP_SHA256  $tmp/go.zip" | sha256sum -c --quiet - >/dev/null 2>&1; then
  echo "go_toolchain: $url does not match the pinned SHA-256 $ZIP_SHA256" \
       "(got $(sha256sum "$tmp/go.zip" | cut -d' ' -f1))" >&2
  exit 1
fi
unzip -q "$tmp/go.zip" -d "$tmp/x"
root=$tmp/x/golang.org/toolchain@$MOD_VERSION
# Module zips need not keep the executable bit (the go command sets it the same way).
chmod +x "$root"/bin/* "$root"/pkg/tool/linux_amd64/*
if [ "$(head -n1 "$root/VERSION")" != "$GO_VERSION" ]; then
  echo "go_toolchain: the zip holds $(head -n1 "$root/VERSION"), not $GO_VERSION" >&2
  exit 1
fi
rm -rf "$dest"
mv "$root" "$dest"
if [ "$(env -u GOROOT GOTOOLCHAIN=local "$go" env GOVERSION)" != "$GO_VERSION" ]; then
  echo "go_toolchain: $go does not run as $GO_VERSION" >&2
  exit 1
fi
echo "go_toolchain: $GO_VERSION in $dest" >&2
echo "$go"
