#!/usr/bin/env bash
# make test's last step: every test binary of the workspace, each run even when another fails
# (--no-fail-fast), its output shown as it comes and kept in target/test-output.log; then one
# summary: each suite's tests and time, every failing test by name, and a closing count.
#   tests/run.sh [CARGO]
set -uo pipefail
cd "$(dirname "$0")/.."
cargo=${1:-cargo}
log=target/test-output.log
mkdir -p target
start=$(date +%s)
# What the suites start from, built first in the default target directory, so that the tests'
# own build shares its dependencies instead of each suite building its own copy in a directory
# of its own: the debug library (for C and LuaJIT) and up42wh, and the release workspace (make
# build's library and signing tool, and up42wh: what the images and the packages take).
{ "$cargo" build --workspace --locked --lib --bins &&
  "$cargo" build --workspace --locked --release; } 2>&1 | tee "$log"
if [ "${PIPESTATUS[0]}" != 0 ]; then
  echo "make test: the builds the suites need failed (above)" >&2
  exit 1
fi
built_in=${CARGO_TARGET_DIR:-$PWD/target}
export UP42WH_TEST_CDYLIB=$built_in/debug/libup42webhooks.so
export UP42WH_TEST_UP42WH=$built_in/debug/up42wh
export UP42WH_TEST_RELEASE_DIR=$built_in/release
built=$(date +%s)
"$cargo" test --workspace --locked --no-fail-fast 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}

# Each "Running X (path)" or "Doc-tests X" starts a suite; its "test result:" line ends it. A
# failing test is listed as "    name" under "failures:" after its "---- name stdout ----".
awk -v elapsed=$(($(date +%s) - start)) -v builds=$((built - start)) '
  /^ *Running / { suite = ($2 == "unittests" ? "unit tests " $3 : $2); next }
  /^ *Doc-tests / { suite = "doc-tests " $2; next }
  /^test result: / {
    passed = $4; failed = $6; t = $NF; sub(/s$/, "", t)
    total_p += passed; total_f += failed
    rows[++n] = sprintf("  %-36s %5d passed %3d failed %8.1f s", suite, passed, failed, t)
    next
  }
  /^---- .* stdout ----$/ { name = $2; fails[++m] = suite ": " name; next }
  /to rerun pass/ { cargo[++k] = $0; next }
  END {
    print ""
    print "make test: the suites (" elapsed " s in all, of which " builds " s the builds before them)"
    for (i = 1; i <= n; i++) print rows[i]
    if (m + k > 0) print "failed:"
    for (i = 1; i <= m; i++) print "  " fails[i]
    for (i = 1; i <= k; i++) print "  " cargo[i]
    print total_p " passed, " total_f " failed"
  }' "$log"
exit "$status"
