#!/bin/sh
# Writes the load_module lines an nginx needs for the Lua module into FILE: none for OpenResty
# (built in), Debian's ndk and lua modules for Debian's nginx (libnginx-mod-http-lua), found where
# Debian puts them. Fails, saying what to install, when this nginx has no Lua module at all.
#
#   openresty/modules.sh NGINX FILE
#
# POSIX sh: the host's make serve (prefix.sh) and the Debian image's build both run it.
set -eu
nginx=${1:?usage: modules.sh NGINX FILE}
file=${2:?usage: modules.sh NGINX FILE}
: > "$file"
if "$nginx" -V 2>&1 | grep -q -e lua-nginx-module -e ngx_lua; then
  exit 0
fi
for m in ndk_http_module ngx_http_lua_module; do
  for d in /usr/lib/nginx/modules /usr/share/nginx/modules; do
    if [ -f "$d/$m.so" ]; then echo "load_module $d/$m.so;" >> "$file"; break; fi
  done
done
grep -q ngx_http_lua_module "$file" || {
  echo "$nginx has no Lua module: install OpenResty, or libnginx-mod-http-lua" >&2; exit 1; }
