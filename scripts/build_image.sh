#!/usr/bin/env bash
# Builds the agent's image from the Containerfile with buildah (no daemon) into the
# project's container storage (scripts/image_env.sh), on the base scripts/image_base.sh
# made from Debian's archive, never pulling from a registry.
#   scripts/build_image.sh [NAME]       # default localhost/hoptrace:dev
# Layers are cached (--layers): the package layers are built once; a source change
# rebuilds from `COPY . /src`, with the compiler cache of earlier builds (a cache mount).
# Isolation "chroot": buildah's RUN steps need no OCI runtime and make no cgroups (crun
# refuses this machine's hybrid cgroup layout; runc would create cgroups at the root).
# Needs scripts/setup.sh --image. Run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=image_env.sh
. "$here/image_env.sh"
name=${1:-$IMAGE_NAME}
"$here/image_base.sh"
cd "$here/.."
start=$(date +%s)
nice buildah bud --isolation chroot --network host --layers --pull-never \
  --build-arg "BASE=$IMAGE_BASE" -t "$name" -f Containerfile .
echo "build_image: $name built in $(( $(date +%s) - start )) s," \
     "$(podman image inspect --format '{{.Size}}' "$name") bytes"
