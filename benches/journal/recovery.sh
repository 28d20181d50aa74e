#!/usr/bin/env bash
# How long a start takes to put a journal of N events back into the shared dict and the replay
# index: a journal written by examples/journal_fill (events of BODY_BYTES, default 1 KiB, an hour
# old), then nginx with the project's config and a dict of DICT (default 512m; make it big enough
# for the events); the module reports the replay's duration in /stats (journal_replay_ms, measured
# around the replay in init_by_lua; journal_replay_index_ms of it putting the ids in the index).
#   [BODY_BYTES=1024] [DICT=512m] benches/journal/recovery.sh [N]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-100000}
. "$root/benches/server.sh"
(cd "$root" && cargo build --release --locked --example journal_fill -q)

dir=$(mktemp -d /tmp/up42wh-recovery.XXXXXX)
bench_server "$root" "$dir"
sed -e "s/lua_shared_dict received_webhooks 16m;/lua_shared_dict received_webhooks ${DICT:-512m};/" \
    "$root/openresty/default.conf" > "$dir/conf/default.conf"
"$root/target/release/examples/journal_fill" "$dir/data" "$n" "${BODY_BYTES:-1024}"
[ "$(id -u)" != 0 ] || chown -R "$(stat -c %U "$dir/data")" "$dir/data"
echo "journal: $(du -sh "$dir/data" | cut -f1) in $(ls "$dir/data" | grep -c '^events')" segment\(s\)
export UP42_WEBHOOK_SECRET="recovery-bench-secret"
# The journal's events were all stored within one window of the replay horizon (a day): the
# index must take N ids a window, a third of its capacity.
export UP42_WEBHOOK_DEDUP_CAPACITY=$(( n * 3 > 1000000 ? n * 3 : 1000000 ))
start=$(date +%s.%N)
"$nginx" -p "$dir" -c conf/nginx.conf
trap '"$nginx" -p "$dir" -c conf/nginx.conf -s stop 2>/dev/null; sleep 0.5; rm -rf "$dir"' EXIT
for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$admin/ping" >/dev/null && break; sleep 0.05; done
ready=$(date +%s.%N)
stats=$(curl -fs "http://127.0.0.1:$admin/stats")
python3 - "$stats" "$start" "$ready" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
c = s["counters"]
print(f'replayed {c["journal_replayed_events"]} events in {c["journal_replay_ms"]} ms '
      f'(init_by_lua; {c["journal_replay_index_ms"]} ms of it filling the replay index with '
      f'{s["dedup"]["ids"]} ids); nginx answering {float(sys.argv[3]) - float(sys.argv[2]):.2f} s after its start; '
      f'events held: {s["backlog"]["events"]}')
PY

# The index alone, rebuilt from the journal (reading it for the ids only): what a reload does when
# it finds no index.
rm -f "$dir/data/replay.index"
"$nginx" -p "$dir" -c conf/nginx.conf -s reload
for _ in $(seq 1 600); do
    line=$(grep -o 'replay index .* was created: .*' "$dir/logs/error.log" || true)
    [ -z "$line" ] || break
    sleep 0.05
done
echo "rebuilt from the journal alone: ${line:-not within 30 s}"
