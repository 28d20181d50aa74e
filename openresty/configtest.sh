#!/bin/sh
# The containers' `nginx -t` (make configtest, make restart): each image says where its nginx and
# its prefix are (UP42WH_NGINX, UP42WH_PREFIX: the Debian image sets both); without them,
# OpenResty's own binary and layout. Arguments are passed on (-q).
set -eu
nginx=${UP42WH_NGINX:-/usr/local/openresty/bin/openresty}
if [ -n "${UP42WH_PREFIX:-}" ]; then
  exec "$nginx" -e stderr -p "$UP42WH_PREFIX/" -c conf/nginx.conf -t "$@"
fi
exec "$nginx" -t "$@"
