#!/bin/sh
# An exec route of up42wh forward (examples/forward.toml): one email per event, through the
# system's sendmail (msmtp, Postfix, ...; SENDMAIL names another). The event's JSON is on standard
# input; UP42WH_EVENT, UP42WH_STATUS, UP42WH_ID and UP42WH_LIVE describe it (the receiver writes
# them on one line: they cannot add headers). Exit 0 is delivered; anything else is retried.
#   command = ["forward/mail-event.sh", "ops@example.com"]
set -eu
to=${1:?usage: mail-event.sh ADDRESS}
mode=test
[ "${UP42WH_LIVE:-}" = true ] && mode=live
{
  printf 'To: %s\n' "$to"
  printf 'Subject: UP42 %s %s (%s)\n' "${UP42WH_EVENT:-event}" "${UP42WH_STATUS:-}" "$mode"
  printf 'Content-Type: application/json\n\n'
  cat
  printf '\n'
} | "${SENDMAIL:-/usr/sbin/sendmail}" -t
