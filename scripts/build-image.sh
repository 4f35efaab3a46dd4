#!/usr/bin/env bash
# Builds the operator's image with buildah (no Docker daemon needed).
#
#   scripts/build-image.sh            # IMAGE=localhost/kitex-etcd-operator:<version>
#   scripts/build-image.sh base       # only the local Debian base (cached)
#
# Environment:
#   IMAGE        the tag to build (default: localhost/kitex-etcd-operator:<pyproject version>)
#   IMAGE_BASE   auto (default): the Dockerfile's pinned python slim image when a
#                registry answers, else a local Debian base; `local`: the local base
#                only; `pinned`: the Dockerfile's default only; or any image reference.
#   DEBIAN_MIRROR  where debootstrap fetches packages (default: http://deb.debian.org/debian)
#
# The local base: `debootstrap --variant=minbase` of this machine's Debian release
# plus python3 and python3-venv, committed into a buildah image. It is cached as a
# tarball under ~/.cache/kitex-etcd-operator/base-debian-<release>-<key>/ (key: the
# package list and this recipe), so only the first run pays for debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[image] $*" >&2; }

scripts/image-tools.sh

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
IMAGE=${IMAGE:-localhost/kitex-etcd-operator:$version}
IMAGE_BASE=${IMAGE_BASE:-auto}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
pinned=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile | head -1)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kitex-etcd-operator"

release=bookworm
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${ID:-}:${VERSION_CODENAME:-}")
    case "$codename" in debian:?*) release=${codename#debian:} ;; esac
fi
# python3-venv brings ensurepip's wheels; ca-certificates lets the image verify TLS
# (etcd and the API server); nothing here is a compiler.
packages="python3,python3-venv,ca-certificates"
recipe_version=1
key=$(printf '%s\n' "$release" "$packages" "$recipe_version" | sha256sum | cut -c1-12)
base_tag="localhost/kitex-etcd-operator-base:debian-$release-$key"
base_dir="$cache/base-debian-$release-$key"

local_base() {
    if buildah inspect --type image "$base_tag" >/dev/null 2>&1; then
        say "local base $base_tag (in buildah's storage)"
        return
    fi
    mkdir -p "$base_dir"
    exec 9>"$base_dir/.lock"
    if ! flock -n 9; then
        say "waiting for another build of the base in $base_dir ..."
        flock 9
    fi
    if [ ! -s "$base_dir/rootfs.tar" ]; then
        local root="$base_dir/rootfs.tmp" started=$SECONDS
        rm -rf "$root"
        say "debootstrap $release (minbase + $packages) from $DEBIAN_MIRROR: the first time takes a few minutes; log $base_dir/debootstrap.log"
        if ! debootstrap --variant=minbase --include="$packages" "$release" "$root" "$DEBIAN_MIRROR" \
                >"$base_dir/debootstrap.log" 2>&1; then
            tail -30 "$base_dir/debootstrap.log" >&2
            say "debootstrap failed"; exit 1
        fi
        # What an image needs not: package caches, lists, docs and man pages.
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
               "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
               "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/*
        tar --numeric-owner -C "$root" -cf "$base_dir/rootfs.tar.tmp" .
        mv "$base_dir/rootfs.tar.tmp" "$base_dir/rootfs.tar"
        rm -rf "$root"
        say "debootstrap done in $((SECONDS - started)) s"
    fi
    if ! buildah inspect --type image "$base_tag" >/dev/null 2>&1; then
        local ctr
        ctr=$(buildah from scratch)
        buildah add --quiet "$ctr" "$base_dir/rootfs.tar" / >/dev/null
        buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --env LANG=C.UTF-8 --cmd /bin/sh \
            --label "org.opencontainers.image.description=Debian $release minbase + python3 (local base of kitex-etcd-operator)" \
            "$ctr"
        buildah commit --quiet --rm "$ctr" "$base_tag" >/dev/null
        say "committed $base_tag"
    fi
    exec 9>&-
}

if [ "${1:-}" = base ]; then  # only the local base (make tools prepares it)
    local_base; echo "$base_tag"; exit 0
fi

case "$IMAGE_BASE" in
    local) local_base; base=$base_tag ;;
    pinned) base=$pinned ;;
    auto)
        if timeout 30 buildah pull --quiet "$pinned" >/dev/null 2>&1; then
            base=$pinned
        else
            say "no registry answered for $pinned: using a local Debian base"
            local_base; base=$base_tag
        fi ;;
    *) base=$IMAGE_BASE ;;
esac

# pip inside the build trusts what pip trusts here: a TLS-inspecting proxy's CA
# bundle (PIP_CERT, REQUESTS_CA_BUNDLE or SSL_CERT_FILE) goes in as a build
# secret, used by the install step only and kept out of the image.
secret=()
ca=${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-}}}
if [ -n "$ca" ] && [ -s "$ca" ]; then
    secret=(--secret "id=pip-ca,src=$ca")
fi

# The image this tag named before: removed after the build (not left dangling).
previous=$(buildah images --quiet --noheading "$IMAGE" 2>/dev/null | head -1 || true)

started=$SECONDS
say "building $IMAGE on $base"
buildah build --isolation chroot --layers=false --pull=never "${secret[@]}" \
    --build-arg "BASE_IMAGE=$base" --build-arg "VERSION=$version" \
    -t "$IMAGE" -f Dockerfile . >&2
say "built $IMAGE in $((SECONDS - started)) s"
current=$(buildah images --quiet --noheading "$IMAGE" | head -1)
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    buildah rmi "$previous" >/dev/null 2>&1 || true
fi
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$IMAGE" >&2
echo "$IMAGE"
