#!/bin/sh
# Writes the two files that default.conf includes for its listeners, into the directory given:
#   up42webhooks-public.conf  the public server: its listen lines, its certificate when it speaks
#                             TLS, and the admin port that its 404 for admin paths names
#   up42webhooks-admin.conf   the admin server's listen line, and its access log (ADMIN_ACCESS_LOG=on)
#
#   LISTEN='127.0.0.1:9888' ADMIN_LISTEN='127.0.0.1:9889' [TLS_LISTEN=443 TLS_CERT=.. TLS_KEY=..] \
#   NGINX=/usr/sbin/nginx openresty/listen.sh DIR
#
# LISTEN and TLS_LISTEN may each hold several addresses separated by spaces, and either may be
# empty; TLS_LISTEN needs TLS_CERT and TLS_KEY (absolute paths: nginx resolves relative ones
# against its prefix). TLS_STAPLING=on staples OCSP responses (it needs RESOLVER, the address of a
# DNS resolver nginx may ask). NGINX's version decides how HTTP/2 is switched on. POSIX sh: the
# host's make serve (prefix.sh) and the container's entrypoint (busybox) both run it.
set -eu
dir=${1:?usage: listen.sh DIR (settings in the environment)}
LISTEN=${LISTEN-127.0.0.1:9888}
TLS_LISTEN=${TLS_LISTEN-}
ADMIN_LISTEN=${ADMIN_LISTEN:-127.0.0.1:9889}
NGINX=${NGINX:-nginx}

fail() { echo "listen.sh: $*" >&2; exit 1; }

[ -n "$LISTEN$TLS_LISTEN" ] || fail "nothing to listen on: set LISTEN or TLS_LISTEN"
if [ -n "$TLS_LISTEN" ]; then
  for f in "${TLS_CERT:-}" "${TLS_KEY:-}"; do
    case $f in
      /*) [ -r "$f" ] || fail "cannot read $f" ;;
      "") fail "TLS needs both TLS_CERT and TLS_KEY" ;;
      *) fail "$f: give an absolute path" ;;
    esac
  done
fi

# nginx 1.25.1 made HTTP/2 a server setting (`http2 on;`) and deprecated `listen ... http2`.
version=$("$NGINX" -v 2>&1 | sed -n 's|^.*/\([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\).*$|\1|p')
[ -n "$version" ] || fail "cannot tell the version of $NGINX"
old_ifs=$IFS; IFS=.
# shellcheck disable=SC2086 # split on the dots on purpose
set -- $version
IFS=$old_ifs
if [ "$1" -gt 1 ] || [ "$2" -gt 25 ] || { [ "$2" -eq 25 ] && [ "$3" -ge 1 ]; }; then
  http2_server="http2 on;"; http2_listen=""
else
  http2_server=""; http2_listen=" http2"
fi

# The admin port that the public 404 names: the last part of the admin address.
admin_port=${ADMIN_LISTEN##*:}

public=$dir/up42webhooks-public.conf
{
  echo "# Written by openresty/listen.sh; edits are lost when it runs again."
  for a in $LISTEN; do echo "listen $a;"; done
  for a in $TLS_LISTEN; do echo "listen $a ssl$http2_listen;"; done
  if [ -n "$TLS_LISTEN" ]; then
    [ -z "$http2_server" ] || echo "$http2_server"
    echo "ssl_certificate $TLS_CERT;"
    echo "ssl_certificate_key $TLS_KEY;"
    if [ "${TLS_STAPLING:-off}" = on ]; then
      [ -n "${RESOLVER:-}" ] || fail "TLS_STAPLING=on needs RESOLVER (a DNS resolver's address)"
      echo "ssl_stapling on;"
      echo "ssl_stapling_verify on;"
      echo "resolver $RESOLVER;"
    fi
  fi
  echo "set \$up42webhooks_admin_port $admin_port;"
} > "$public.tmp"
mv "$public.tmp" "$public"

admin=$dir/up42webhooks-admin.conf
{
  echo "# Written by openresty/listen.sh; edits are lost when it runs again."
  for a in $ADMIN_LISTEN; do echo "listen $a;"; done
  # The access log holds deliveries; admin requests (a consumer's polls, make dump) only when
  # ADMIN_ACCESS_LOG=on asks for them.
  if [ "${ADMIN_ACCESS_LOG:-off}" = on ]; then echo "access_log logs/access.log;"; else echo "access_log off;"; fi
} > "$admin.tmp"
mv "$admin.tmp" "$admin"
