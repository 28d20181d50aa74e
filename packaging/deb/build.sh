#!/usr/bin/env bash
# Builds up42webhooks_<version>_<arch>.deb with dpkg-deb from this checkout's files and the release
# builds of the library and up42wh for ARCH (make deb runs it; make build / make cross make them).
#   packaging/deb/build.sh ARCH LIB_DIR OUT_DIR [VERSION]
# ARCH: amd64, arm64 or armhf. LIB_DIR holds libup42webhooks.so and up42wh for it.
# dpkg-deb, not cargo-deb: most of the package is not Rust's (the Lua module, nginx's config, the
# units, the maintainer scripts), and dpkg-deb is Debian's own tool, already on every build host.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
arch=${1:?usage: build.sh ARCH LIB_DIR OUT_DIR [VERSION]}
lib_dir=${2:?usage: build.sh ARCH LIB_DIR OUT_DIR [VERSION]}
out=${3:?usage: build.sh ARCH LIB_DIR OUT_DIR [VERSION]}
version=${4:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)-1}
case $arch in
  amd64) triplet=x86_64-linux-gnu ;;
  arm64) triplet=aarch64-linux-gnu ;;
  armhf) triplet=arm-linux-gnueabihf ;;
  *) echo "build.sh: ARCH is amd64, arm64 or armhf, not $arch" >&2; exit 2 ;;
esac
for f in libup42webhooks.so up42wh; do
  [ -f "$lib_dir/$f" ] || { echo "build.sh: no $lib_dir/$f (make build, or make cross for a board)" >&2; exit 1; }
done

pkg=$(mktemp -d)
trap 'rm -rf "$pkg"' EXIT
chmod 0755 "$pkg"
here=$root/packaging/deb
install -d "$pkg/DEBIAN"
# The library where Debian keeps Lua's C modules (on LuaJIT's package.cpath), the Lua module
# where Debian keeps Lua modules (on package.path), the program on the PATH.
# Named by its SONAME (build.rs), with the name Lua's package.cpath looks for beside it.
install -D -m 0644 "$lib_dir/libup42webhooks.so" "$pkg/usr/lib/$triplet/lua/5.1/libup42webhooks.so.0"
ln -s libup42webhooks.so.0 "$pkg/usr/lib/$triplet/lua/5.1/libup42webhooks.so"
install -D -m 0755 "$lib_dir/up42wh" "$pkg/usr/bin/up42wh"
# make cross's builds are stripped already; this machine's own are stripped here.
if [ "$arch" = "$(dpkg --print-architecture)" ]; then
  strip --strip-unneeded "$pkg/usr/bin/up42wh" "$pkg/usr/lib/$triplet/lua/5.1/libup42webhooks.so.0"
fi
install -D -m 0644 "$root/lua/up42webhooks.lua" "$pkg/usr/share/lua/5.1/up42webhooks.lua"
install -d "$pkg/usr/share/lua/5.1/up42webhooks"
install -m 0644 "$root"/lua/up42webhooks/*.lua "$pkg/usr/share/lua/5.1/up42webhooks/"
# nginx's configuration for an instance of its own: conffiles under /etc/up42webhooks/.
install -D -m 0644 "$root/openresty/nginx.conf" "$pkg/etc/up42webhooks/nginx.conf"
install -D -m 0644 "$root/openresty/default.conf" "$pkg/etc/up42webhooks/default.conf"
install -D -m 0644 "$here/up42webhooks.env" "$pkg/etc/up42webhooks/up42webhooks.env"
install -D -m 0644 "$here/logrotate" "$pkg/etc/logrotate.d/up42webhooks"
# What the service runs before nginx, and the pages.
install -D -m 0755 "$here/prestart" "$pkg/usr/share/up42webhooks/prestart"
install -D -m 0755 "$here/start" "$pkg/usr/share/up42webhooks/start"
install -D -m 0755 "$root/openresty/listen.sh" "$pkg/usr/share/up42webhooks/listen.sh"
install -D -m 0755 "$root/openresty/modules.sh" "$pkg/usr/share/up42webhooks/modules.sh"
cp -R "$root/openresty/html" "$pkg/usr/share/up42webhooks/html"
install -D -m 0644 "$here/up42webhooks.service" "$pkg/lib/systemd/system/up42webhooks.service"
install -D -m 0644 "$here/up42webhooks-forward.service" "$pkg/lib/systemd/system/up42webhooks-forward.service"
install -D -m 0644 "$here/up42webhooks-reconcile.service" "$pkg/lib/systemd/system/up42webhooks-reconcile.service"
install -D -m 0644 "$here/up42webhooks-reconcile.timer" "$pkg/lib/systemd/system/up42webhooks-reconcile.timer"
# nginx's prefix: the generated files, the temp files and the journal; its config and pages linked.
prefix=$pkg/var/lib/up42webhooks
install -d "$prefix/conf"
ln -s /etc/up42webhooks/nginx.conf "$prefix/conf/nginx.conf"
ln -s /etc/up42webhooks/default.conf "$prefix/conf/default.conf"
ln -s /usr/share/up42webhooks/html "$prefix/html"
ln -s "/usr/lib/$triplet/lua/5.1" "$prefix/lib"
ln -s ../../log/up42webhooks "$prefix/logs"
install -d "$pkg/usr/share/doc/up42webhooks"
install -m 0644 "$root/README.md" "$pkg/usr/share/doc/up42webhooks/README.md"
# The forwarder's example as shipped: the configuration to copy to /etc/up42webhooks/forward.toml,
# and its programs where that file looks for them (forward/...: conffiles, the operator's to edit).
install -D -m 0644 "$root/examples/forward.toml" "$pkg/usr/share/up42webhooks/examples/forward.toml"
for p in "$root"/examples/forward/*; do
  install -D -m 0755 "$p" "$pkg/etc/up42webhooks/forward/$(basename "$p")"
done
install -m 0644 "$root/LICENSE" "$pkg/usr/share/doc/up42webhooks/copyright"
gzip -9n -c "$here/changelog" > "$pkg/usr/share/doc/up42webhooks/changelog.Debian.gz"

find "$pkg/etc" -type f | sed "s|^$pkg||" | sort > "$pkg/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$pkg/DEBIAN/$s"; done
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: up42webhooks
Version: $version
Architecture: $arch
Maintainer: up42webhooks developers <up42webhooks@users.noreply.github.com>
Installed-Size: $size
Depends: nginx, libnginx-mod-http-lua, lua-resty-core, lua-cjson, adduser, libc6 (>= 2.34), libgcc-s1
Suggests: lua-nginx-redis, lua-nginx-redis-connector
Section: net
Priority: optional
Homepage: https://github.com/up42webhooks/up42webhooks
Description: receiver for UP42's signed webhooks, as an nginx instance of its own
 Verifies UP42's job and order notifications (and GitHub, Stripe, Standard
 Webhooks and RFC 9421 senders) at native speed in nginx's Lua module, keeps
 each verified event in a journal on disk, and serves them on a loopback admin
 listener: a dump, a live tail, stats and an inbox page. up42wh forwards events
 to HTTP endpoints, Slack and local programs, and registers the receiver with
 UP42's API.
CONTROL
# lintian's remaining tags, and why they stay:
# - initial-upload-closes-no-bugs: the package is built here, not uploaded to Debian;
# - no-manual-page (usr/bin/up42wh): its help is `up42wh --help` and each subcommand's --help.
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out/up42webhooks_${version}_${arch}.deb" >/dev/null
echo "$out/up42webhooks_${version}_${arch}.deb"
