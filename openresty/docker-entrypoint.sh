#!/bin/sh
# The containers' entrypoint: writes this start's listen files with listen.sh, then runs the
# command (nginx in the foreground). Public listener: port 80, and port 443 with TLS (HTTP/2 and
# HTTP/1.1) when UP42_WEBHOOK_TLS_CERT and UP42_WEBHOOK_TLS_KEY name the certificate and key
# (docker-compose.tls.yml mounts them); admin listener: port 9889, which compose publishes on the
# host's 127.0.0.1 only. Where the listen files go and which nginx reads them is the image's to say
# (UP42WH_CONF_DIR, UP42WH_NGINX: the Debian image sets both); the defaults are OpenResty's.
set -eu
if [ -n "${UP42_WEBHOOK_TLS_CERT:-}${UP42_WEBHOOK_TLS_KEY:-}" ]; then
  export TLS_LISTEN=443 TLS_CERT="${UP42_WEBHOOK_TLS_CERT:-}" TLS_KEY="${UP42_WEBHOOK_TLS_KEY:-}"
fi
LISTEN=80 ADMIN_LISTEN=9889 NGINX=${UP42WH_NGINX:-/usr/local/openresty/bin/openresty} \
  /usr/local/bin/up42webhooks-listen "${UP42WH_CONF_DIR:-/usr/local/openresty/nginx/conf}"
exec "$@"
