#!/usr/bin/env bash
# Builds a Debian bookworm base image for Dockerfile.debian without a container registry: debootstrap
# lays out a minimal root (with nginx, its Lua module, lua-resty-core, lua-cjson and the Redis
# client already installed, so that the image's build needs no network), and a FROM scratch build
# adds it to an image. Both are kept: the image in the engine (labelled with the root's recipe, so
# that a changed recipe makes a new one) and the root as a tarball under CACHE_DIR (target/docker),
# so that the next run makes the image again without bootstrapping.
#   docker/bootstrap-base.sh ARCH TAG [CACHE_DIR]      ARCH: amd64, arm64 or armhf
# A foreign ARCH needs qemu-user-static with its binfmt handlers registered (make docker-deps).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:?usage: bootstrap-base.sh ARCH TAG [CACHE_DIR]}
tag=${2:?usage: bootstrap-base.sh ARCH TAG [CACHE_DIR]}
cache=${3:-$root/target/docker}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
case $arch in
  amd64) platform=linux/amd64 ;;
  arm64) platform=linux/arm64 ;;
  armhf) platform=linux/arm/v7 ;;
  *) echo "bootstrap-base.sh: no platform for $arch (amd64, arm64 or armhf)" >&2; exit 2 ;;
esac
# What Dockerfile.debian would otherwise install with apt-get (it installs only what is missing).
packages=nginx,libnginx-mod-http-lua,lua-resty-core,lua-cjson
# What the root holds, in one line: a change to it makes a new root (and a new image).
recipe="debootstrap minbase $suite $arch $packages + lua-nginx-redis files, slim v1"
stamp=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
tarball=$cache/$suite-$arch-$stamp.tar

have=$(docker image inspect -f \
  '{{index .Config.Labels "up42webhooks.base"}} {{.Os}}/{{.Architecture}}{{with .Variant}}/{{.}}{{end}}' \
  "$tag" 2>/dev/null || true)
if [ "$have" = "$stamp $platform" ]; then
  echo "$tag is there already ($platform)"
  exit 0
fi

if [ ! -s "$tarball" ]; then
  [ "$(id -u)" = 0 ] || { echo "bootstrap-base.sh: debootstrap needs root" >&2; exit 1; }
  command -v debootstrap >/dev/null || { echo "bootstrap-base.sh: needs debootstrap" >&2; exit 1; }
  mkdir -p "$cache"
  dir=$(mktemp -d "$cache/root-$arch.XXXXXX")
  trap 'rm -rf "$dir"' EXIT
  start=$(date +%s)
  echo "bootstrapping Debian $suite for $arch into $dir (a minute or two)"
  debootstrap --variant=minbase --arch="$arch" --include="$packages" \
    "$suite" "$dir" "$mirror" > "$cache/debootstrap-$arch.log" 2>&1 || {
    tail -n 20 "$cache/debootstrap-$arch.log" >&2; echo "debootstrap failed for $arch" >&2; exit 1; }
  # The Redis store's client: Debian packages it as lua-nginx-redis (+ its connector), which
  # depends on nginx-extras; only its Lua files are needed, so they are unpacked beside the others.
  debs=$(mktemp -d)
  (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root lua-nginx-redis lua-nginx-redis-connector) \
    >/dev/null || { echo "cannot download the Redis client (lua-nginx-redis)" >&2; exit 1; }
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$dir"; done
  rm -rf "$debs"
  # As Debian's slim images do: no package lists, caches, manuals or translations.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/cache/debconf/*-old \
    "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/*
  find "$dir/var/log" -type f -delete
  find "$dir/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  tar --numeric-owner -C "$dir" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  echo "bootstrapped $arch in $(( $(date +%s) - start )) s: $tarball ($(du -m "$tarball" | cut -f1) MiB)"
fi

# `docker import --platform` is honoured only by engines in experimental mode: a FROM scratch
# build records the platform everywhere. Its context holds only the root (a hard link to it).
ctx=$(mktemp -d "$cache/context-$arch.XXXXXX")
ln "$tarball" "$ctx/root.tar" 2>/dev/null || cp "$tarball" "$ctx/root.tar"
printf 'FROM scratch\nADD root.tar /\nLABEL up42webhooks.base=%s\nCMD ["/bin/bash"]\n' "$stamp" |
  docker build -q --platform "$platform" -t "$tag" -f - "$ctx" >/dev/null || {
  rm -rf "$ctx"; echo "bootstrap-base.sh: could not make $tag from $tarball" >&2; exit 1; }
rm -rf "$ctx"
echo "made $tag ($platform) from $tarball"
