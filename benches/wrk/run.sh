#!/usr/bin/env bash
# wrk against real nginx with the project's config: signed deliveries to /receive-webhooks versus
# the same requests to a `return 200` location, same server, same run. Prints both rates, the
# ratio, and the server's own count of stored events (every signed request must be stored once).
# A third location shows what any Lua handler costs before doing anything: it only reads the body
# and answers, so the gap between it and `return 200` is not the receiver's to close.
#   benches/wrk/run.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-10}
conns=${2:-16}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
nginx=$(command -v openresty || command -v nginx || echo /usr/sbin/nginx)
lib="$root/target/release/libup42webhooks.so"
[ -f "$lib" ] || { echo "build first: make build" >&2; exit 1; }

dir=$(mktemp -d /tmp/up42wh-wrk.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/openresty/prefix.sh" "$dir" "$port" "$root/target/release" "$nginx"
# The project's server, plus the baseline location and a store big enough for the whole run.
rm "$dir/conf/default.conf"
sed -e 's/lua_shared_dict received_webhooks 16m;/lua_shared_dict received_webhooks 512m;/' \
    -e 's/lua_shared_dict webhooks_seen 4m;/lua_shared_dict webhooks_seen 128m;/' \
    -e 's|    location = /ping {|    location = /bench-baseline {\n        return 200;\n    }\n\n    location = /bench-lua-floor {\n        content_by_lua_block { ngx.req.read_body() local _ = ngx.req.get_body_data() ngx.say("ok") }\n    }\n\n    location = /ping {|' \
    "$root/openresty/default.conf" > "$dir/conf/default.conf"
export UP42_WEBHOOK_SECRET="wrk-bench-secret"
"$nginx" -p "$dir" -c conf/nginx.conf
trap '"$nginx" -p "$dir" -c conf/nginx.conf -s stop; sleep 0.5; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.1; done

export UP42WH_ROOT="$root" UP42WH_LIB="$lib"
run() { wrk -t2 -c"$conns" -d"${secs}s" -s "$root/benches/wrk/signed.lua" "http://127.0.0.1:$port$1"; }
base=$(run /bench-baseline)
floor=$(run /bench-lua-floor)
signed=$(run /receive-webhooks)
rate() { awk '/^Requests\/sec:/ {print $2}'; }
b=$(echo "$base" | rate)
f=$(echo "$floor" | rate)
s=$(echo "$signed" | rate)
echo "baseline (return 200):    $b requests/s   $(echo "$base" | grep '^requests')"
echo "Lua floor (read body):    $f requests/s   $(echo "$floor" | grep '^requests')"
echo "signed /receive-webhooks: $s requests/s   $(echo "$signed" | grep '^requests')"
python3 -c "b, f, s = float('$b'), float('$f'), float('$s'); print(f'ratio signed/baseline: {s / b:.2f} (target >= 0.80); Lua floor/baseline: {f / b:.2f}; signed/Lua floor: {s / f:.2f}')"
stats=$(curl -fs "http://127.0.0.1:$port/stats")
echo "server counters: $stats"
