#!/usr/bin/env bash
# Builds the Kubernetes tools the chart and pod-metadata tests use, from the Go module proxy,
# at pinned versions, into a cache outside the tree (HOPTRACE_TOOLS, default
# /var/cache/hoptrace-tools). Idempotent: a tool already there at its version is kept.
#   bin/helm                         helm.sh/helm/v3 at HELM_VERSION
#   bin/kube-apiserver-<version>     cmd/kube-apiserver of k8s.io/kubernetes at K8S_VERSION
#   openapi-<version>/               the API's OpenAPI v3 documents (api/openapi-spec/v3)
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the k8s.io/* staging modules
# with directories the module zip does not carry. The same modules are published at
# v0.<minor>.<patch>; pointing the replace directives there builds the same code.
# Called by scripts/setup.sh --tests. Builds with the pinned Go of scripts/go_toolchain.sh
# (installed into the same cache if missing), never PATH's go: Kubernetes 1.37 needs Go 1.26.
set -euo pipefail

HELM_VERSION=v3.21.4
K8S_VERSION=v1.37.2
TOOLS=${HOPTRACE_TOOLS:-/var/cache/hoptrace-tools}
mkdir -p "$TOOLS/bin"
export GOFLAGS=-mod=mod GOWORK=off GOTOOLCHAIN=local
unset GOROOT
GO=$("$(dirname "$0")/go_toolchain.sh")

# A helm built by `go install` reports only its minor version: a marker file says which.
if [ ! -x "$TOOLS/bin/helm" ] || [ "$(cat "$TOOLS/bin/helm.version" 2>/dev/null)" != "$HELM_VERSION" ]; then
  echo "k8s_tools: building helm $HELM_VERSION"
  GOBIN="$TOOLS/bin" nice "$GO" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$TOOLS/bin/helm.version"
fi

apiserver="$TOOLS/bin/kube-apiserver-$K8S_VERSION"
openapi="$TOOLS/openapi-$K8S_VERSION"
if [ ! -x "$apiserver" ] || [ ! -d "$openapi" ]; then
  echo "k8s_tools: building kube-apiserver $K8S_VERSION (the first time: tens of minutes on two cores)"
  dir=$("$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  src="$TOOLS/src/kubernetes-$K8S_VERSION"
  rm -rf "$TOOLS/src"
  mkdir -p "$TOOLS/src"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  rm -f "$src/go.work" "$src/go.work.sum"
  minor=${K8S_VERSION#v1.}
  sed -i -E "s#(k8s\.io/[a-z-]+) => \./staging/src/k8s\.io/[a-z-]+#\1 => \1 v0.$minor#" "$src/go.mod"
  (cd "$src" && nice "$GO" build -o "$apiserver.tmp" ./cmd/kube-apiserver)
  mv "$apiserver.tmp" "$apiserver"
  rm -rf "$openapi.tmp" && cp -r "$src/api/openapi-spec/v3" "$openapi.tmp"
  rm -rf "$openapi" && mv "$openapi.tmp" "$openapi"
  rm -rf "$TOOLS/src"
fi
echo "k8s_tools: helm $HELM_VERSION, kube-apiserver $K8S_VERSION in $TOOLS"
