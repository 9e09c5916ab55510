# Sourced by the image scripts (scripts/image_base.sh, scripts/build_image.sh,
# tests/image/run_image_test.sh): the project's own container storage, apart from
# anything else on the machine that uses podman or buildah, so that a test run can
# list and remove exactly what it made.
#   HOPTRACE_IMAGE_CACHE   default /var/cache/hoptrace-image (storage, base rootfs tarball)
# Exports CONTAINERS_STORAGE_CONF (read by podman and buildah alike) pointing at a
# storage.conf written here; "$IMAGE_BASE" is the debootstrapped base's name.
HOPTRACE_IMAGE_CACHE=${HOPTRACE_IMAGE_CACHE:-/var/cache/hoptrace-image}
IMAGE_BASE=localhost/hoptrace-base:bookworm
IMAGE_NAME=localhost/hoptrace:dev
# The storage driver: overlay is the kernel's (no fuse-overlayfs: root needs none);
# HOPTRACE_IMAGE_DRIVER=vfs is the fallback where overlay cannot mount.
HOPTRACE_IMAGE_DRIVER=${HOPTRACE_IMAGE_DRIVER:-overlay}
mkdir -p "$HOPTRACE_IMAGE_CACHE"
export CONTAINERS_STORAGE_CONF=$HOPTRACE_IMAGE_CACHE/storage-$HOPTRACE_IMAGE_DRIVER.conf
tmp_conf=$(mktemp "$CONTAINERS_STORAGE_CONF.XXXXXX")
cat > "$tmp_conf" <<CONF
[storage]
driver = "$HOPTRACE_IMAGE_DRIVER"
graphroot = "$HOPTRACE_IMAGE_CACHE/storage-$HOPTRACE_IMAGE_DRIVER"
runroot = "/run/hoptrace-image-$HOPTRACE_IMAGE_DRIVER"
CONF
chmod 644 "$tmp_conf" && mv "$tmp_conf" "$CONTAINERS_STORAGE_CONF"
