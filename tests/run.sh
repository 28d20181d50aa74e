#!/usr/bin/env bash
# make test's last step: every test binary of the workspace, each run even when another fails, and
# the ARM checks; then one summary: each suite's tests and time, every failing test by name, and a
# closing count. The output is kept in target/test-output.log (the ARM lane's in
# target/test-output/arm.log).
#   tests/run.sh [CARGO]        (MAKE names the make that runs make cross-test)
#
# Two lanes run at once. The suites spend much of their time waiting (nginx, browsers, Redis,
# timeouts) while builds keep both cores busy, so the builds the later suites need run beside them:
#  - the ARM lane, in the background, in a target directory of its own (cargo locks one per build):
#    the host's release build (make build's library and signing tool, and up42wh: what the images
#    and packages take), then make cross and make cross-test (the boards' builds, under qemu);
#  - the host lane: the debug library and up42wh, the test build, then the suites that need
#    neither the release build nor the boards'.
# Once both are done: tests/inbox, tests/operations and tests/up42 (which take them), and
# tests/faults (its thousands of connections want a quiet machine), then the doc-tests.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo=${1:-cargo}
make=${MAKE:-make}
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}
lane_dir=$target_dir/lane
out=$target_dir/test-output
log=$target_dir/test-output.log
mkdir -p "$out"
: > "$log"
start=$(date +%s)
failed_steps=()

# The ARM lane.
(
  export CARGO_TARGET_DIR=$lane_dir
  began=$(date +%s)
  "$cargo" build --workspace --locked --release && "$make" --no-print-directory cross-test
  status=$?
  echo "$status $(($(date +%s) - began))" > "$out/arm.status"
) > "$out/arm.log" 2>&1 &
arm=$!

# The host lane: what the suites start from, built in the default target directory, where the
# test build then shares its dependencies (the debug library for C and LuaJIT, and up42wh).
{ "$cargo" build --workspace --locked --lib --bins &&
  "$cargo" test --workspace --locked --no-run; } 2>&1 | tee -a "$log"
built=${PIPESTATUS[0]}
export UP42WH_TEST_CDYLIB=$target_dir/debug/libup42webhooks.so
export UP42WH_TEST_UP42WH=$target_dir/debug/up42wh
export UP42WH_TEST_RELEASE_DIR=$lane_dir/release
host_built=$(date +%s)

# Each test binary: its source (as cargo names it), its package's directory and the executable.
binaries=()
if [ "$built" = 0 ]; then
  mapfile -t binaries < <("$cargo" test --workspace --locked --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .profile.test and .executable != null)
           | (.manifest_path | sub("/Cargo.toml$"; "")) as $dir
           | [(if .target.kind[0] == "test" then "" else "unittests " end)
              + (.target.src_path | ltrimstr($dir + "/")), $dir, .executable] | @tsv' | sort)
  [ "${#binaries[@]}" -gt 0 ] || { echo "make test: no test binaries found" | tee -a "$log"; built=1; }
else
  failed_steps+=("the host's builds (above)")
fi

# Runs the binaries whose source matches $1 (an extended regular expression), in cargo's order,
# each from its package's directory as cargo runs it, with cargo's header line.
run_suites() {
  (
    status=0
    for line in "${binaries[@]}"; do
      IFS=$'\t' read -r name dir exe <<< "$line"
      [[ $name =~ $1 ]] || continue
      echo "     Running $name (${exe#"$root"/})"
      (cd "$dir" && "$exe") || status=1
    done
    exit "$status"
  ) 2>&1 | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

LATER='tests/(inbox|operations|faults|up42)/'
run_suites "^(unittests .*|tests/(abi|forward|receiver)/.*|tests/no_alloc\.rs)$" ||
  failed_steps+=("a host suite (above)")

echo "make test: the host lane's suites are done; waiting for the ARM lane (release build, make cross," \
     "make cross-test: $out/arm.log)" | tee -a "$log"
wait "$arm"
read -r arm_status arm_secs < "$out/arm.status" 2>/dev/null || arm_status=1 arm_secs=?
if [ "$arm_status" != 0 ]; then
  tail -n 80 "$out/arm.log" | tee -a "$log"
  failed_steps+=("the ARM lane: its output is in $out/arm.log (the end above)")
fi
grep -E '^test result: |^== ' "$out/arm.log" | sed 's/^/  arm lane: /' | tee -a "$log"

if [ "$arm_status" = 0 ] && [ "$built" = 0 ]; then
  run_suites "^$LATER" || failed_steps+=("a later suite (above)")
elif [ "$built" = 0 ]; then
  # Without the release build there is nothing for these to take: named, not run.
  failed_steps+=("tests/inbox, operations, up42 and faults did not run (the ARM lane failed)")
fi
"$cargo" test -p up42webhooks --locked --doc 2>&1 | tee -a "$log" | grep -E '^test result|Doc-tests' ||
  true

# Each "Running X (path)" or "Doc-tests X" starts a suite; its "test result:" line ends it. A
# failing test is listed as "    name" under "failures:" after its "---- name stdout ----".
awk -v elapsed=$(($(date +%s) - start)) -v builds=$((host_built - start)) -v arm="$arm_secs" '
  /^ *Running / { suite = ($2 == "unittests" ? "unit tests " $3 : $2); next }
  /^ *Doc-tests / { suite = "doc-tests " $2; next }
  /^  arm lane: / { next }
  /^test result: / {
    passed = $4; failed = $6; t = $NF; sub(/s$/, "", t)
    total_p += passed; total_f += failed
    rows[++n] = sprintf("  %-36s %5d passed %3d failed %8.1f s", suite, passed, failed, t)
    next
  }
  /^---- .* stdout ----$/ { name = $2; fails[++m] = suite ": " name; next }
  END {
    print ""
    print "make test: the suites (" elapsed " s in all; the host lane built for " builds " s, the ARM lane took " arm " s beside it)"
    for (i = 1; i <= n; i++) print rows[i]
    if (m > 0) print "failed:"
    for (i = 1; i <= m; i++) print "  " fails[i]
    print total_p " passed, " total_f " failed"
  }' "$log"
for s in "${failed_steps[@]}"; do echo "failed: $s"; done
[ "${#failed_steps[@]}" = 0 ]
