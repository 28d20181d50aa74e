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
# Workers of a root master run as nobody: they must reach the prefix, and own the spool of request
# bodies (tmp/) and the journal's directory (data/: the events); nobody else may read or write
# either (no world-writable directory: a body spooled there is a delivery not yet verified).
chmod 755 "$dir"
chmod 700 "$dir/tmp" "$dir/tmp/body" "$dir/data"
# Logs name senders' addresses: the owner and its group only (nginx makes new ones under umask 027).
chmod 640 "$dir"/logs/*.log 2>/dev/null || true
if [ "$(id -u)" = 0 ]; then
  worker=$("$nginx" -V 2>&1 | sed -n 's/.*--user=\([^ ]*\).*/\1/p')
  worker=${worker:-nobody}
  chown -R "$worker" "$dir/data" "$dir/tmp"
  # The workers must get to the journal, the spooled bodies and the error pages: a directory above
  # the checkout or the run directory that other users cannot enter (/root, a mktemp -d one) would
  # make every delivery a 503 (journal_error) after a start that looked fine.
  reach() {
    runuser -u "$worker" -- test "$1" "$2" 2>/dev/null || {
      echo "prefix.sh: nginx's workers run as $worker and cannot get to $2: a directory above it is" \
        "closed to other users. Clone the project and choose the run directory (RUN_DIR) where" \
        "$worker can reach them, not under /root, or open the directories above them (chmod o+x)." >&2
      exit 1
    }
  }
  if command -v runuser >/dev/null 2>&1; then
    # By absolute paths, as nginx's prefix is: a relative one starts inside the closed directory.
    abs=$(cd "$dir" && pwd)
    reach -w "$abs/data"
    reach -w "$abs/tmp/body"
    reach -r "$root/openresty/html/errors/404.json"
  fi
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

"$root/openresty/modules.sh" "$nginx" "$dir/conf/up42webhooks-modules.conf"
