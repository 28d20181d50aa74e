#!/bin/sh
# The containers' health check: the admin listener's /ping answers PONG. It asks over plain HTTP on
# loopback, which reaches the admin listener whether or not the public one speaks TLS. busybox
# wget in the OpenResty Alpine image; bash's /dev/tcp in the Debian image, which has neither wget
# nor curl. Docker's --timeout ends a check that hangs.
port=${UP42_WEBHOOK_HEALTH_PORT:-9889}
if command -v wget >/dev/null 2>&1; then
  wget -q -O - "http://127.0.0.1:$port/ping" | grep -q PONG
else
  bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf "GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && grep -q PONG <&3' health "$port"
fi
