#!/usr/bin/env bash
# The Containerfile's base image, made from Debian's archive for machines that reach
# deb.debian.org but no container registry (ours: registry-1.docker.io and quay.io do not
# resolve). debootstrap --variant=minbase bookworm (priority required + apt: what the
# official debian:12 image holds), trimmed like debian:12-slim (no documentation, manual
# pages or translations, by dpkg path-exclude rules that later installs obey too), imported
# into the project's container storage (scripts/image_env.sh) as $IMAGE_BASE.
#   scripts/image_base.sh     # once; a base already imported costs a `podman image exists`
# The rootfs tarball is kept in $HOPTRACE_IMAGE_CACHE; its apt sources, the archive's
# Release date and debootstrap's version are recorded in the image's labels. Pinned: the
# suite (bookworm) and the variant; not pinned: the point release of the day, because the
# archive's snapshot service (snapshot.debian.org) does not resolve here either.
# Needs scripts/setup.sh --image (debootstrap, podman). Run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=image_env.sh
. "$here/image_env.sh"
SUITE=bookworm
MIRROR=http://deb.debian.org/debian

if podman image exists "$IMAGE_BASE"; then
  echo "image_base: $IMAGE_BASE ready"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "image_base: run sudo scripts/setup.sh --image" >&2; exit 1; }
tarball=$HOPTRACE_IMAGE_CACHE/$SUITE-minbase.tar
if [ ! -f "$tarball" ]; then
  stage=$HOPTRACE_IMAGE_CACHE/stage
  # A stage left by an interrupted run may still have debootstrap's /proc mounted.
  if [ -d "$stage" ]; then
    for m in proc sys dev/pts; do mountpoint -q "$stage/$m" && umount "$stage/$m"; done
    rm -rf --one-file-system "$stage"
  fi
  echo "image_base: debootstrap --variant=minbase $SUITE into $stage"
  # The archive's state it was made from (the Release file's Date), kept with the tarball.
  curl -fsS "$MIRROR/dists/$SUITE/Release" | sed -n 's/^Date: //p' > "$tarball.release"
  nice debootstrap --variant=minbase --arch=amd64 "$SUITE" "$stage" "$MIRROR"
  for m in proc sys dev/pts; do mountpoint -q "$stage/$m" && umount "$stage/$m"; done
  # What debian:12-slim leaves out (debuerreotype's --slimify list), for this and every
  # later install.
  cat > "$stage/etc/dpkg/dpkg.cfg.d/hoptrace-slim" <<'EXCLUDE'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EXCLUDE
  find "$stage/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$stage/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$stage"/usr/share/{groff,info,linda,lintian/overrides,locale,man}/*
  # apt's sources as the official image has them (debootstrap writes only the suite's main).
  cat > "$stage/etc/apt/sources.list" <<LIST
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
LIST
  rm -rf "$stage"/var/cache/apt/archives/*.deb "$stage"/var/lib/apt/lists/* "$stage"/var/log/*.log
  tar --numeric-owner -C "$stage" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  rm -rf --one-file-system "$stage"
fi
debootstrap_version=$(dpkg-query -W -f='${Version}' debootstrap)
release_date=$(cat "$tarball.release")
echo "image_base: importing $tarball ($(du -h "$tarball" | cut -f1)) as $IMAGE_BASE"
podman import \
  --change "LABEL org.hoptrace.base.suite=$SUITE" \
  --change "LABEL org.hoptrace.base.debootstrap=$debootstrap_version" \
  --change "LABEL org.hoptrace.base.release-date=\"$release_date\"" \
  --change 'CMD ["bash"]' \
  "$tarball" "$IMAGE_BASE" >/dev/null
echo "image_base: $IMAGE_BASE ready"
