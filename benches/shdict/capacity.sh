#!/usr/bin/env bash
# How many 1 KiB deliveries the default event dict (lua_shared_dict received_webhooks 16m) holds:
# wrk sends distinct signed deliveries (benches/wrk/signed.lua, BODY=padded and BODY=job) to a
# fresh receiver without a journal until the store answers 503, then /stats tells how many were
# stored; events per MiB = stored / 16. The dicts are the project's own sizes; SEEN=64m enlarges the
# dedup dict (for a checkout whose dedup dict fills first). ROOT may name another checkout (built)
# to measure it the same way.
#   [ROOT=/path/to/checkout] benches/shdict/capacity.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
root=${ROOT:-$here}
. "$here/benches/server.sh"
dir=$(mktemp -d /tmp/up42wh-capacity.XXXXXX)
bench_server "$root" "$dir"
sed -e "${SEEN:+s/lua_shared_dict webhooks_seen [0-9]*m;/lua_shared_dict webhooks_seen $SEEN;/}" \
    "$root/openresty/default.conf" > "$dir/conf/default.conf"
export UP42_WEBHOOK_SECRET="capacity-bench-secret" UP42WH_ROOT="$here" UP42WH_LIB="$here/target/release/libup42webhooks.so"
trap '"$nginx" -p "$dir" -c conf/nginx.conf -s stop 2>/dev/null || true; sleep 0.5; rm -rf "$dir"' EXIT
for body in padded job; do
    rm -rf "$dir/data"
    UP42_WEBHOOK_JOURNAL=off "$nginx" -p "$dir" -c conf/nginx.conf
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$admin/ping" >/dev/null && break; sleep 0.1; done
    BODY=$body wrk -t1 -c4 -d3s -s "$here/benches/wrk/signed.lua" "http://127.0.0.1:$port/receive-webhooks" >/dev/null
    curl -fs "http://127.0.0.1:$admin/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
stored, full = s["counters"].get("stored", 0), s["counters"].get("store_full", 0)
print(f"BODY={sys.argv[1]}: {stored} stored in received_webhooks 16m ({stored / 16:.0f} per MiB), then {full} answered 503 store_full")
' "$body"
    "$nginx" -p "$dir" -c conf/nginx.conf -s stop
    for _ in $(seq 1 50); do [ -f "$dir/logs/nginx.pid" ] || break; sleep 0.1; done
done
