#!/usr/bin/env bash
# wrk against real nginx with the project's config. First, in one nginx (a fresh one each
# series), the same signed deliveries (every request a distinct 1 KiB UP42 delivery) to five
# handlers in turn, SERIES times (default 3): `return 200`, a Lua floor (read the body, answer),
# the original article's handler (no checks), a plain Lua/OpenSSL plugin doing our checks and
# writes (plain_plugin.lua), and ours in memory-only mode; a table of the medians and ours
# relative to each.
# Then ours alone for each journal fsync mode in FSYNC_MODES (default: interval, the default mode),
# each on a fresh journal; "off" runs it without a journal (memory only); "redis" runs it on the
# Redis store (a redis-server of its own: AOF on, appendfsync everysec) and counts Redis's commands
# per stored delivery.
# With PIN=1, one nginx worker pinned to vCPU 0 (worker_cpu_affinity) and wrk's one thread to vCPU 1
# (taskset): the scheduler no longer moves them onto each other, which is most of the spread between
# series on a 2-vCPU machine. Its figures go beside the unpinned ones, which decide.
#   [PIN=1] [SERIES=3] [FSYNC_MODES="off never interval always redis"] benches/wrk/run.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-10}
conns=${2:-16}
modes=${FSYNC_MODES:-interval}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
. "$root/benches/server.sh"
lib="$root/target/release/libup42webhooks.so"

dir=$(mktemp -d /tmp/up42wh-wrk.XXXXXX)
# The project's servers, plus the other handlers (locations.conf, modules in $dir/bench), their
# dicts, and a store big enough for the whole run.
bench_server "$root" "$dir"
mkdir -p "$dir/bench"
cp "$root/benches/wrk/article.lua" "$dir/bench/bench_article.lua"
cp "$root/benches/wrk/plain_plugin.lua" "$dir/bench/bench_plain.lua"
cp "$root/benches/wrk/locations.conf" "$dir/conf/bench-locations.conf"
sed -e 's/lua_shared_dict received_webhooks 16m;/lua_shared_dict received_webhooks 1024m;/' \
    -e 's/lua_shared_dict webhooks_seen 1m;/lua_shared_dict webhooks_seen 512m;\nlua_shared_dict article_webhooks 512m;\nlua_shared_dict plain_webhooks 1024m;\nlua_shared_dict plain_seen 512m;/' \
    -e "s|lua_package_path '\$prefix/lua/?.lua;|lua_package_path '\$prefix/bench/?.lua;\$prefix/lua/?.lua;|" \
    -e '0,/    location = \/ping {/s||    include bench-locations.conf;\n\n    location = /ping {|' \
    "$root/openresty/default.conf" > "$dir/conf/default.conf"
export UP42_WEBHOOK_SECRET="wrk-bench-secret"
# Every request is a new delivery id, and the replay index takes a third of its capacity in a day:
# room for the whole run (the index's file, 88 bytes an id, is made at each start).
export UP42_WEBHOOK_DEDUP_CAPACITY=${DEDUP_CAPACITY:-9000000}

redis_port=""
redis_cli() { redis-cli -p "$redis_port" "$@"; }
start_redis() {
    command -v redis-server >/dev/null || { echo "redis-server is needed for the redis mode" >&2; exit 1; }
    redis_port=$(free_port)
    mkdir -p "$dir/redis"
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes \
        --appendfsync everysec --save '' --daemonize yes --pidfile "$dir/redis/pid" >/dev/null
    for _ in $(seq 1 50); do redis_cli ping >/dev/null 2>&1 && return; sleep 0.1; done
    echo "redis-server did not start" >&2; exit 1
}
start() {
    rm -rf "$dir/data"/*
    if [ "$1" = redis ]; then
        [ -n "$redis_port" ] || start_redis
        UP42_WEBHOOK_STORE="redis://127.0.0.1:$redis_port/0" "$nginx" -p "$dir" -c conf/nginx.conf
    elif [ "$1" = off ]; then
        UP42_WEBHOOK_JOURNAL=off "$nginx" -p "$dir" -c conf/nginx.conf
    else
        UP42_WEBHOOK_JOURNAL_FSYNC=$1 "$nginx" -p "$dir" -c conf/nginx.conf
    fi
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$admin/ping" >/dev/null && return; sleep 0.1; done
    echo "nginx did not start: $(tail -n 5 "$dir/logs/error.log")" >&2; exit 1
}
stop() {
    "$nginx" -p "$dir" -c conf/nginx.conf -s stop 2>/dev/null || true
    for _ in $(seq 1 50); do [ -f "$dir/logs/nginx.pid" ] || return 0; sleep 0.1; done
}
trap 'stop; [ -z "$redis_port" ] || redis_cli shutdown nosave >/dev/null 2>&1; rm -rf "$dir"' EXIT

export UP42WH_ROOT="$root" UP42WH_LIB="$lib"
if [ -n "${PIN:-}" ]; then
    command -v taskset >/dev/null || { echo "PIN=1 needs taskset (util-linux)" >&2; exit 1; }
    [ "$(nproc)" -ge 2 ] || { echo "PIN=1 needs two vCPUs" >&2; exit 1; }
    # A copy of the project's nginx.conf (the run directory links to it) with one pinned worker.
    cp --remove-destination "$(readlink -f "$dir/conf/nginx.conf")" "$dir/conf/nginx.conf"
    sed -i -e 's/^worker_processes .*/worker_processes 1;\nworker_cpu_affinity 01;/' "$dir/conf/nginx.conf"
    grep -q '^worker_cpu_affinity 01;' "$dir/conf/nginx.conf" || { echo "cannot pin: no worker_processes line" >&2; exit 1; }
    run() { taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" -s "$root/benches/wrk/signed.lua" "http://127.0.0.1:$port$1"; }
    echo "pinned: one nginx worker on vCPU 0, wrk (one thread) on vCPU 1"
else
    run() { wrk -t2 -c"$conns" -d"${secs}s" -s "$root/benches/wrk/signed.lua" "http://127.0.0.1:$port$1"; }
fi
rate() { awk '/^Requests\/sec:/ {print $2}'; }
# Every handler in one nginx (ours in memory-only mode: none of the others writes a journal),
# SERIES times in turn, so that drift of the machine touches all alike.
series=${SERIES:-3}
declare -A rates
names="baseline lua-floor article plain ours"
path_of() { case $1 in ours) echo /receive-webhooks ;; *) echo "/bench-$1" ;; esac; }
# Each series in a fresh nginx: every handler starts its run with an empty dict (the others' are
# emptied before each run; ours, which nothing else writes, is empty at the series' start).
stored_ours=0
stored_plain=0
for s in $(seq 1 "$series"); do
    start off
    for n in $names; do
        curl -fs "http://127.0.0.1:$port/bench-flush" >/dev/null
        out=$(run "$(path_of "$n")")
        r=$(echo "$out" | rate)
        rates[$n]="${rates[$n]:-} $r"
        echo "series $s $n: $r requests/s   $(echo "$out" | grep '^requests')"
        if echo "$out" | grep -q 'non-2xx [1-9]'; then
            echo "$n answered errors: $(tail -n 3 "$dir/logs/error.log")" >&2; exit 1
        fi
    done
    counters=$(curl -fs "http://127.0.0.1:$admin/stats" | python3 -c 'import json, sys; c = json.load(sys.stdin)["counters"]; print(c.get("stored", 0), c.get("plain_stored", 0))')
    stored_ours=$((stored_ours + ${counters% *}))
    stored_plain=$((stored_plain + ${counters#* }))
    stop
done
stats="{\"counters\": {\"stored\": $stored_ours, \"plain_stored\": $stored_plain}}"
python3 - "$stats" "${rates[baseline]}" "${rates[lua-floor]}" "${rates[article]}" "${rates[plain]}" "${rates[ours]}" <<'PY'
import json, statistics, sys
stats = json.loads(sys.argv[1])["counters"]
names = ["return 200", "Lua floor (read body, answer)", "the article's handler (no checks)",
         "plain Lua/OpenSSL plugin (same checks, same writes)", "ours, /receive-webhooks (memory only)"]
series = [[float(x) for x in a.split()] for a in sys.argv[2:]]
ours = statistics.median(series[-1])
print("| location | requests/s (median; each series) | ours relative to it |")
print("| --- | --- | --- |")
for name, rs in zip(names, series):
    m = statistics.median(rs)
    print(f"| {name} | {m:,.0f} ({', '.join(f'{r:,.0f}' for r in rs)}) | {ours / m:.2f} |")
print(f"stored by ours: {stats.get('stored')}, by the plain plugin: {stats.get('plain_stored')}")
PY
b=$(python3 -c "import statistics; print(statistics.median([float(x) for x in '${rates[baseline]}'.split()]))")
f=$(python3 -c "import statistics; print(statistics.median([float(x) for x in '${rates[lua-floor]}'.split()]))")
a=$(python3 -c "import statistics; print(statistics.median([float(x) for x in '${rates[article]}'.split()]))")
for mode in $modes; do
    start "$mode"
    [ "$mode" != redis ] || redis_cli config resetstat >/dev/null
    signed=$(run /receive-webhooks)
    s=$(echo "$signed" | rate)
    echo "signed /receive-webhooks, fsync=$mode: $s requests/s   $(echo "$signed" | grep '^requests')"
    python3 -c "b, f, a, s = float('$b'), float('$f'), float('$a'), float('$s'); print(f'  ratio signed/baseline: {s / b:.2f}; signed/Lua floor: {s / f:.2f}; signed/the article (memory): {s / a:.2f}')"
    stats=$(curl -fs "http://127.0.0.1:$admin/stats")
    python3 -c "import json, sys; s = json.loads(sys.argv[1]); print('  server: stored', s['counters'].get('stored'), 'journal bytes', s['backlog'].get('journal', {}).get('bytes', 0))" "$stats"
    if [ "$mode" = redis ]; then
        # A round trip is a command from a client; GET, SET and XADD here run inside the script.
        calls=$(redis_cli info commandstats | tr -d '\r' | awk -F'[=,:]' '/^cmdstat_eval(sha)?:/ {n += $3} END {print n}')
        python3 -c "import json, sys; s = json.loads(sys.argv[1]); st = s['counters'].get('stored', 0); print(f'  Redis round trips per stored delivery (EVALSHA, and EVAL once per connection before the script is cached): {int(sys.argv[2]) / st:.3f}')" "$stats" "$calls"
        redis_cli info commandstats | tr -d '\r' | grep -E 'cmdstat_(evalsha|eval|xadd|set|get|select|auth|xtrim)' | sed 's/^/  /'
    fi
    stop
done
