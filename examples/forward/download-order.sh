#!/bin/sh
# An exec route of up42wh forward (examples/forward.toml): a fulfilled order's event on standard
# input. Put the command that fetches the order where it says; exit 0 when it is done (anything
# else is retried on the route's schedule, and dead-lettered after the last attempt).
set -eu
order=$(jq -r '.body.orderId')
echo "order $order is fulfilled (${UP42WH_LIVE:-} mode): starting its download" >&2
# e.g.: exec /usr/local/bin/fetch-up42-order "$order"
