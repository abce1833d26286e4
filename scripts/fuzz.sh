#!/usr/bin/env bash
# Bounded fuzzing run, as CI runs it (alongside the tests, scripts/test.sh): every cargo-fuzz target of the project
# (chip/fuzz: the card's APDU entry point and its PACE / Chip Authentication parsers;
# personalization/fuzz: the host's secure-messaging
# response reader; registry/fuzz: the offline audit export verifier) for
# IDSTATION_FUZZ_SECONDS each (default 60), starting from the committed seed corpus (copied:
# the committed corpus is not changed). A crash fails the run and leaves
# the input under <crate>/fuzz/artifacts/<target>/.
#
# cargo-fuzz needs unstable rustc flags (sanitizer, coverage instrumentation): a nightly
# toolchain when rustup has one, else the machine's stable toolchain with RUSTC_BOOTSTRAP=1.
#
# No sanitizer by default (IDSTATION_FUZZ_SANITIZER=address for AddressSanitizer): the fuzzed
# crates (chip, personalization, registry) forbid unsafe code, so a memory error cannot come
# from them, and a cold build of the three fuzz crates took 319 CPU seconds without it against
# about 980 with it (2026-12-03, 2 cores). A panic, an overflow or a failed debug assertion is
# still a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${IDSTATION_FUZZ_SECONDS:-60}"
sanitizer="${IDSTATION_FUZZ_SANITIZER:-none}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
# The fuzz crates are not workspace members and build with their own flags (sanitizer,
# coverage): keep their artifacts apart from the workspace's target dir, but in one directory
# for the three of them, so libFuzzer and the dependencies they share are compiled once.
unset CARGO_TARGET_DIR
fuzz_target_dir="$PWD/target/fuzz"

targets=(chip/fuzz:apdu chip/fuzz:pace personalization/fuzz:sm_response registry/fuzz:export_verify)
jobs="${IDSTATION_FUZZ_JOBS:-2}"
# Build every target first (one cargo at a time), then run them IDSTATION_FUZZ_JOBS at a time
# (default 2: libFuzzer is single-threaded, one per core).
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
for dir in chip/fuzz personalization/fuzz registry/fuzz; do
  echo "== fuzz build $dir"
  if ! (cd "$dir" && "${fuzz[@]}" build -s "$sanitizer" --target-dir "$fuzz_target_dir") >"$logs/build.log" 2>&1; then
    tail -40 "$logs/build.log" >&2
    echo "== FAILED: cargo fuzz build in $dir" >&2
    exit 1
  fi
done

# One target: a copy of its seed corpus, a bounded run, a summary in $logs/<target>.summary.
run_target() {
  local dir="${1%%:*}" target="${1##*:}" rc=0
  local work="$logs/$target.corpus" log="$logs/$target.log"
  mkdir -p "$work"
  cp -r "$dir/corpus/$target/." "$work/"
  (cd "$dir" && "${fuzz[@]}" run -s "$sanitizer" --target-dir "$fuzz_target_dir" "$target" "$work" -- -max_total_time="$secs") >"$log" 2>&1 || rc=$?
  {
    echo "== fuzz $dir $target for ${secs}s"
    grep -E '^Done [0-9]+ runs|panicked at|^SUMMARY' "$log" || true
    if [ "$rc" -ne 0 ]; then
      tail -40 "$log"
      echo "== FAILED: fuzz target $target ($dir) exited $rc; a crash input is in $dir/artifacts/$target/"
    fi
  } >"$logs/$target.summary"
  return "$rc"
}

pids=()
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_target "$t" &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
for t in "${targets[@]}"; do cat "$logs/${t##*:}.summary"; done
if [ "$failed" -ne 0 ]; then
  echo "== FAILED: a fuzz target found a crash (above)" >&2
  exit 1
fi
echo "== fuzzing done"
