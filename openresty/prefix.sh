#!/usr/bin/env bash
# Lays out an nginx prefix directory that runs this project's config:
#   [ADMIN_LISTEN=127.0.0.1:9889] [TLS_CERT=/abs/cert.pem TLS_KEY=/abs/key.pem] \
#   openresty/prefix.sh DIR LISTEN [LIBDIR] [NGINX]
# DIR/conf links to openresty/{nginx,default}.conf (so edits need only a reload), DIR/lua to the Lua
# module, DIR/lib to the directory holding libup42webhooks.so (default target/release). The
# per-host files are written here: the listen files (listen.sh: the public listener on LISTEN, a
# port or address:port, with TLS when TLS_CERT and TLS_KEY are given; the admin listener on
# ADMIN_LISTEN) and the load_module lines that Debian's nginx needs for its Lua module (none for
# OpenResty).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: prefix.sh DIR LISTEN [LIBDIR] [NGINX]}
listen=${2:?usage: prefix.sh DIR LISTEN [LIBDIR] [NGINX]}
libdir=${3:-$root/target/release}
nginx=${4:-$(command -v openresty || command -v nginx || echo /usr/sbin/nginx)}

[ -f "$libdir/libup42webhooks.so" ] || { echo "no $libdir/libup42webhooks.so: run make build" >&2; exit 1; }
mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp/body" "$dir/data"
# Workers of a root master run as nobody: they must reach the prefix and write spooled bodies,
# and own the journal's directory (data/: the events; nobody else may read it).
chmod 755 "$dir"
chmod 1777 "$dir/tmp" "$dir/tmp/body"
chmod 700 "$dir/data"
if [ "$(id -u)" = 0 ]; then
  worker=$("$nginx" -V 2>&1 | sed -n 's/.*--user=\([^ ]*\).*/\1/p')
  chown -R "${worker:-nobody}" "$dir/data"
fi
ln -sfn "$root/lua" "$dir/lua"
# Lua modules the system does not have (make nginx-deps puts the Redis client there).
mkdir -p "$root/vendor/lua"
ln -sfn "$root/vendor/lua" "$dir/vendor"
ln -sfn "$(cd "$libdir" && pwd)" "$dir/lib"
ln -sfn "$root/openresty/html" "$dir/html"
ln -sf "$root/openresty/nginx.conf" "$dir/conf/nginx.conf"
ln -sf "$root/openresty/default.conf" "$dir/conf/default.conf"
# A bare port is a port on loopback: opening it to the network is a choice (LISTEN=0.0.0.0:9888).
case $listen in *[!0-9]*) ;; *) listen=127.0.0.1:$listen ;; esac
if [ -n "${TLS_CERT:-}${TLS_KEY:-}" ]; then
  LISTEN="" TLS_LISTEN=$listen NGINX=$nginx "$root/openresty/listen.sh" "$dir/conf"
else
  LISTEN=$listen TLS_LISTEN="" NGINX=$nginx "$root/openresty/listen.sh" "$dir/conf"
fi

modules="$dir/conf/up42webhooks-modules.conf"
: > "$modules"
if ! "$nginx" -V 2>&1 | grep -q -e lua-nginx-module -e ngx_lua; then
  for m in ndk_http_module ngx_http_lua_module; do
    for d in /usr/lib/nginx/modules /usr/share/nginx/modules; do
      if [ -f "$d/$m.so" ]; then echo "load_module $d/$m.so;" >> "$modules"; break; fi
    done
  done
  grep -q ngx_http_lua_module "$modules" || {
    echo "$nginx has no Lua module: install OpenResty, or libnginx-mod-http-lua" >&2; exit 1; }
fi
