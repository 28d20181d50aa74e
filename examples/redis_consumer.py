#!/usr/bin/env python3
"""A consumer of the events that up42webhooks receivers store in Redis/Valkey: every event at least
once per consumer group, across crashes of the consumer.

    examples/redis_consumer.py --group billing --consumer worker-1 [--url redis://127.0.0.1:6379/0]
        [--stream up42webhooks] [--idle-ms 60000] [--stop-when-idle SECONDS] -- COMMAND [ARG...]

COMMAND runs once per event with the event's JSON on its standard input; the entry is acknowledged
(XACK) only when COMMAND exits 0, so an event whose handling failed or was cut short is handed out
again. The group is created when missing (from the start of the stream). On start the consumer
first takes back what it was given before it last stopped (its own pending entries), and it claims
entries that another consumer of the group took but has not acknowledged for --idle-ms (XAUTOCLAIM):
a consumer that died loses nothing. Needs redis-py (pip install redis).
"""
import argparse
import subprocess
import sys
import time

import redis


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--stream", default="up42webhooks")
    p.add_argument("--group", required=True)
    p.add_argument("--consumer", required=True)
    p.add_argument("--idle-ms", type=int, default=60000)
    p.add_argument("--stop-when-idle", type=float, default=0, help="exit after this long with nothing to do")
    p.add_argument("command", nargs="+")
    a = p.parse_args()

    r = redis.Redis.from_url(a.url)
    try:
        r.xgroup_create(a.stream, a.group, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise

    def handle(entries):
        for entry_id, fields in entries:
            done = subprocess.run(a.command, input=fields[b"json"]).returncode == 0
            if done:
                r.xack(a.stream, a.group, entry_id)
        return len(entries)

    # What this consumer was given before it stopped, then new entries; now and then, what others
    # left behind.
    own = "0"
    quiet_since = time.monotonic()
    last_claim = 0.0
    while True:
        worked = 0
        if time.monotonic() - last_claim > 5:
            last_claim = time.monotonic()
            _, claimed, *_ = r.xautoclaim(a.stream, a.group, a.consumer, a.idle_ms, "0-0", count=100)
            worked += handle(claimed)
        if own is not None:
            reply = r.xreadgroup(a.group, a.consumer, {a.stream: own}, count=100)
            entries = reply[0][1] if reply else []
            if entries:
                worked += handle(entries)
                own = entries[-1][0]
            else:
                own = None  # nothing pending left: from now on, new entries only
            continue
        reply = r.xreadgroup(a.group, a.consumer, {a.stream: ">"}, count=100, block=1000)
        if reply:
            worked += handle(reply[0][1])
        if worked:
            quiet_since = time.monotonic()
        elif a.stop_when_idle and time.monotonic() - quiet_since > a.stop_when_idle:
            return 0


if __name__ == "__main__":
    sys.exit(main())
