#!/usr/bin/env bash
# make test's last step (after the lints): every test binary of the workspace (each run even when
# another fails) and the ARM checks; then one summary: each suite's tests and time, every failing
# test and step by name, and a closing count. The output is kept in target/test-output.log (the
# ARM lane's in target/test-output/arm.log).
#   tests/run.sh [CARGO]        (MAKE names the make that runs make cross and make cross-check)
#
# The suites spend much of their time waiting (nginx, browsers, Redis, containers, timeouts) while
# builds keep both cores busy, so two lanes run at once:
#  - the ARM lane, in the background, in a target directory of its own (cargo locks one per build):
#    the host's release library and signing tool (make build's), make cross (the boards' builds,
#    into a dist directory of its own, $target_dir/test-dist: the checkout's dist/ is left alone;
#    their up42wh with the quick "qemu" profile, Cargo.toml), then make cross-check (those builds
#    under qemu);
#  - the host lane: the debug library and up42wh and the test build (its up42wh, stripped, goes
#    beside the release library: the make targets, images and packages run it; its release build
#    costs as much as the rest of the lane and adds nothing the tests could see), then the suites
#    that need nothing else (tests/abi, forward, receiver, the unit tests; the library has no
#    doc-tests: Cargo.toml); once the release library is there, tests/up42 (with the inbox page's); once
#    the boards' builds are, tests/operations; last, when the ARM lane is done too, tests/faults
#    (its thousands of connections want a quiet machine).
set -uo pipefail
cd "$(dirname "$0")/.."
cargo=${1:-cargo}
make=${MAKE:-make}
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}
lane_dir=$target_dir/lane
test_dist=$target_dir/test-dist
out=$target_dir/test-output
log=$target_dir/test-output.log
mkdir -p "$out"
rm -f "$out"/*.status "$out"/arm.end*
: > "$log"
start=$(date +%s)
failed_steps=()

# The ARM lane: each step writes "STATUS SECONDS" to $out/STEP.status when it ends.
(
  export CARGO_TARGET_DIR=$lane_dir
  step() {
    local name=$1 began status
    shift
    began=$(date +%s)
    echo "== the ARM lane: $name: $*"
    "$@"
    status=$?
    echo "$status $(($(date +%s) - began))" > "$out/$name.status.new"
    mv "$out/$name.status.new" "$out/$name.status"
    return "$status"
  }
  step release "$cargo" build --locked --release --lib --bin up42wh-sign &&
    step cross "$make" --no-print-directory cross DIST="$test_dist" UP42WH_PROFILE=qemu &&
    step cross-check "$make" --no-print-directory cross-check DIST="$test_dist"
  status=$?
  echo $(($(date +%s) - start)) > "$out/arm.end.new" && mv "$out/arm.end.new" "$out/arm.end"
  exit "$status"
) > "$out/arm.log" 2>&1 &
arm=$!

# Waits for the ARM lane's step $1: its status (0 when it passed), or 1 when the lane ended
# without it. Bounded by the lane itself, and by an hour.
await() {
  local i
  for ((i = 0; i < 3600; i++)); do
    if [ -f "$out/$1.status" ]; then
      return "$(cut -d' ' -f1 < "$out/$1.status")"
    fi
    if [ -f "$out/arm.end" ] || ! kill -0 "$arm" 2>/dev/null; then
      [ -f "$out/$1.status" ] && continue
      return 1
    fi
    sleep 1
  done
  return 1
}

# The host lane: what the suites start from, built in the default target directory, where the
# test build then shares its dependencies (the debug library for C and LuaJIT, and up42wh).
{ "$cargo" build --workspace --locked --lib --bins &&
  "$cargo" test --workspace --locked --no-run; } 2>&1 | tee -a "$log"
built=${PIPESTATUS[0]}
if [ "$built" = 0 ]; then
  mkdir -p "$lane_dir/release" && strip -o "$lane_dir/release/up42wh.new" "$target_dir/debug/up42wh" &&
    mv "$lane_dir/release/up42wh.new" "$lane_dir/release/up42wh" || built=1
fi
export UP42WH_TEST_CDYLIB=$target_dir/debug/libup42webhooks.so
export UP42WH_TEST_UP42WH=$target_dir/debug/up42wh
export UP42WH_TEST_RELEASE_DIR=$lane_dir/release
export UP42WH_TEST_DIST=$test_dist
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
fi
[ "$built" = 0 ] || failed_steps+=("the host's builds (above)")

# Runs the binaries whose source matches $1 (an extended regular expression), each from its
# package's directory as cargo runs it, with cargo's header line.
run_suites() {
  (
    status=0
    for line in "${binaries[@]}"; do
      IFS=$'\t' read -r name dir exe <<< "$line"
      [[ $name =~ $1 ]] || continue
      echo "     Running $name (${exe#"$root"/})"
      (cd "$dir" && "$exe")
      ended=$?
      if [ "$ended" != 0 ]; then
        status=1
        # Named also when it ended without libtest's summary (a crash, a signal).
        echo "make test: $name ended with status $ended"
      fi
    done
    exit "$status"
  ) 2>&1 | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

# The suites after the ARM lane's step $1 (named $2 when they cannot run).
suites_after() {
  local step=$1 pattern=$2 what=$3
  [ "$built" = 0 ] || return 0
  if ! await "$step"; then
    failed_steps+=("$what did not run: the ARM lane's $step failed")
    return 0
  fi
  run_suites "$pattern" || failed_steps+=("$what (above)")
}

if [ "$built" = 0 ]; then
  run_suites "^(unittests .*|tests/(abi|forward|receiver)/.*)$" ||
    failed_steps+=("a host suite (above)")
fi
echo "make test: waiting for the ARM lane's release library ($out/arm.log)" | tee -a "$log"
suites_after release '^tests/up42/' "tests/up42"
echo "make test: waiting for the ARM lane's make cross" | tee -a "$log"
suites_after cross '^tests/operations/' "tests/operations"
echo "make test: waiting for the ARM lane's make cross-check" | tee -a "$log"
wait "$arm"
arm_status=$?
arm_secs=$(cat "$out/arm.end" 2>/dev/null || echo "?")
grep -E '^test result: |^== ' "$out/arm.log" | sed 's/^/  arm lane: /' | tee -a "$log"
if [ "$arm_status" != 0 ]; then
  tail -n 80 "$out/arm.log" | tee -a "$log"
  failed_steps+=("the ARM lane: its output is in $out/arm.log (the end above)")
fi
if [ "$built" = 0 ]; then
  run_suites '^tests/faults/' || failed_steps+=("tests/faults (above)")
fi

# Each "Running X (path)" starts a suite; its "test result:" line ends it. A
# failing test is listed as "    name" under "failures:" after its "---- name stdout ----".
awk -v elapsed=$(($(date +%s) - start)) -v builds=$((host_built - start)) -v arm="$arm_secs" '
  /^ *Running / { suite = ($2 == "unittests" ? "unit tests " $3 : $2); next }
  /^  arm lane: / { next }
  /^test result: / {
    passed = $4; failed = $6; t = $NF; sub(/s$/, "", t)
    total_p += passed; total_f += failed
    rows[++n] = sprintf("  %-36s %5d passed %3d failed %8.1f s", suite, passed, failed, t)
    next
  }
  /^---- .* stdout ----$/ { name = $2; fails[++m] = suite ": " name; next }
  /^make test: .* ended with status / { ended[++e] = "  " $3 " ended with status " $NF; next }
  END {
    print ""
    print "make test: " elapsed " s in all; the host lane built for " builds " s, the ARM lane ended at " arm " s"
    for (i = 1; i <= n; i++) print rows[i]
    if (m + e > 0) print "failed:"
    for (i = 1; i <= m; i++) print "  " fails[i]
    for (i = 1; i <= e; i++) print ended[i]
    print total_p " passed, " total_f " failed"
  }' "$log"
for s in "${failed_steps[@]}"; do echo "failed: $s"; done
[ "${#failed_steps[@]}" = 0 ]
