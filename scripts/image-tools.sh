#!/usr/bin/env bash
# Installs what `make image` needs, from Debian's packages: buildah (builds and
# runs OCI images without a daemon, --isolation chroot) and debootstrap (makes
# the local Python base when no image registry is reachable).
# Idempotent: does nothing when both are on PATH.
set -euo pipefail
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
# buildah's chroot isolation needs the fuse-overlayfs-free vfs/overlay drivers only;
# uidmap gives newuidmap for user namespaces.
command -v newuidmap >/dev/null || missing+=(uidmap)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
    echo "image-tools: ${missing[*]} missing and apt-get not found: install them with your package manager" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! sudo -n true 2>/dev/null; then
        echo "image-tools: ${missing[*]} missing; install them (sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    sudo=(sudo -n)
fi
echo "image-tools: installing ${missing[*]} from Debian's packages" >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
