#!/usr/bin/env bash
# Copies the events a receiver keeps in its journal into a Redis stream, for a switch from the
# journal to the Redis store (docs/store.md): run it while the receiver still runs on the journal,
# then start it (or several) on Redis. Each event becomes a stream entry with the fields the
# receiver writes (json, event, status, live, sender, id, time, envelope: read from the dump's
# ?meta=true lines, the event's bytes as stored); new entry ids, so keys change.
#
#   examples/journal_to_redis.sh ADMIN_URL [redis-cli options: -h host -p port -a password -n db]
#   e.g. examples/journal_to_redis.sh http://127.0.0.1:9889 -p 6379
#
# STREAM (default up42webhooks) names the stream, as configure{ store = { stream = } } does. Events
# of a journal older than the envelope keep the fields they have (UP42's: the sender up42 and the
# body's messageId). Needs curl, jq and redis-cli.
set -euo pipefail
admin=${1:?usage: $0 ADMIN_URL [redis-cli options]}
shift
stream=${STREAM:-up42webhooks}
copied=0
while IFS= read -r line; do
  [ -n "$line" ] || continue
  # The event is the line's last member, as stored: the first ,"event": (every string before it is
  # escaped) up to the closing brace.
  json=${line#*,\"event\":}
  json=${json%\}}
  # The dedup id as the receiver forms it: the sender's name and a colon (none for UP42), m: and
  # UP42's messageId, d: and the body's digest, or i: and another sender's id.
  # One NUL after each field (values may hold tabs and backslashes: @tsv would escape them).
  mapfile -d '' -t f < <(jq -j '
    [.event_type // "", .status // "", (if .live == null then "" else (.live | tostring) end),
     .sender // "up42",
     ((if (.sender // "up42") == "up42" then "" else .sender + ":" end)
      + (if .delivery_id == null then "m:" + (.event.messageId // "")
         elif .delivery_id_from == "messageId" then "m:" elif .delivery_id_from == "body_sha256" then "d:"
         else "i:" end) + (.delivery_id // "")),
     (.received | tostring),
     (if .delivery_id == null then ""
      else {sender, scheme, key_index, delivery_id, delivery_id_from} | tojson | .[1:-1] end)]
    | map(. + "\u0000") | add' <<<"$line")
  [ "${#f[@]}" -eq 7 ] || { echo "cannot read a dump line: $line" >&2; exit 1; }
  event=${f[0]} status=${f[1]} live=${f[2]} sender=${f[3]} id=${f[4]} time=${f[5]} envelope=${f[6]}
  fields=(json "$json" event "$event" status "$status" live "$live" sender "$sender" id "$id" time "$time")
  [ -z "$envelope" ] || fields+=(envelope "$envelope")
  redis-cli "$@" XADD "$stream" '*' "${fields[@]}" >/dev/null
  copied=$((copied + 1))
done < <(curl -fsS "$admin/dump-webhooks?count=false&meta=true")
echo "copied $copied events into the stream $stream"
