#!/usr/bin/env bash
# Bounded fuzzing run, as CI runs it after the tests: every cargo-fuzz target of the project
# (chip/fuzz: the card's APDU entry point and its PACE / Chip Authentication parsers;
# personalization/fuzz: the host's secure-messaging
# response reader; registry/fuzz: the offline audit export verifier) for
# IDSTATION_FUZZ_SECONDS each (default 60), starting from the committed seed corpus (copied:
# the committed corpus is not changed). A crash fails the run and leaves
# the input under <crate>/fuzz/artifacts/<target>/.
#
# cargo-fuzz needs unstable rustc flags (sanitizer, coverage instrumentation): a nightly
# toolchain when rustup has one, else the machine's stable toolchain with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${IDSTATION_FUZZ_SECONDS:-60}"
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

for t in chip/fuzz:apdu chip/fuzz:pace personalization/fuzz:sm_response registry/fuzz:export_verify; do
  dir="${t%%:*}" target="${t##*:}"
  work="$(mktemp -d)"
  cp -r "$dir/corpus/$target/." "$work/"
  echo "== fuzz $dir $target for ${secs}s"
  log="$work.log"
  rc=0
  (cd "$dir" && "${fuzz[@]}" run --target-dir "$fuzz_target_dir" "$target" "$work" -- -max_total_time="$secs") >"$log" 2>&1 || rc=$?
  grep -E '^Done [0-9]+ runs|panicked at|^SUMMARY' "$log" || true
  rm -rf "$work"
  if [ "$rc" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "== FAILED: fuzz target $target ($dir) exited $rc; a crash input is in $dir/artifacts/$target/" >&2
    exit 1
  fi
  rm -f "$log"
done
echo "== fuzzing done"
