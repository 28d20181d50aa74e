#!/usr/bin/env bash
# Copies the events a receiver keeps in its journal into a Redis stream, for a switch from the
# journal to the Redis store (docs/store.md): run it while the receiver still runs on the journal,
# then start it (or several) on Redis. Each event becomes a stream entry with the fields the
# receiver writes (json, event, status, live, sender, id, time); new entry ids, so keys change.
#
#   examples/journal_to_redis.sh ADMIN_URL [redis-cli options: -h host -p port -a password -n db]
#   e.g. examples/journal_to_redis.sh http://127.0.0.1:9889 -p 6379
#
# STREAM (default up42webhooks) names the stream, as configure{ store = { stream = } } does. UP42's
# events only (their event, status, liveMode and messageId fields). Needs curl, jq and redis-cli.
set -euo pipefail
admin=${1:?usage: $0 ADMIN_URL [redis-cli options]}
shift
stream=${STREAM:-up42webhooks}
now=$(date +%s)
copied=0
while IFS= read -r line; do
  [ -n "$line" ] || continue
  IFS=$'\t' read -r event status live id < <(jq -r '[.event // "", .body.status // "",
    (if .liveMode == null then "" else (.liveMode | tostring) end), .messageId // ""] | @tsv' <<<"$line")
  redis-cli "$@" XADD "$stream" '*' json "$line" event "$event" status "$status" live "$live" \
    sender up42 id "$id" time "$now" >/dev/null
  copied=$((copied + 1))
done < <(curl -fsS "$admin/dump-webhooks?count=false")
echo "copied $copied events into the stream $stream"
