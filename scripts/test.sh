#!/usr/bin/env bash
# The full test suite, as CI runs it: install what the tests need, start pcscd with our virtual
# readers, then formatting, lints, the no-failpoints check of a normal build, every test and a
# bounded run of each fuzz target (alongside the tests). Fails loudly on the first error.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
elapsed() { printf "%dm%02ds" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)); }

bash scripts/install-deps.sh
bash scripts/pcsc-up.sh

echo "== [$(elapsed)] cargo fmt --check"
cargo fmt --all -- --check
echo "== [$(elapsed)] cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== [$(elapsed)] no failpoint code without the failpoints feature"
bash scripts/check-no-failpoints.sh
echo "== [$(elapsed)] tests (cargo test --no-run, then the test binaries side by side, the fuzz targets alongside)"
# Every test binary, IDSTATION_TEST_JOBS (default 3) lanes: the card-reader binaries one at a
# time, the rest beside them (scripts/run-tests.py), every one run even after a failure, then
# the doc-tests. The tests mostly wait (pcscd's 400 ms polls, PostgreSQL, child processes), so
# the fuzz build and the bounded fuzz runs (scripts/fuzz.sh, IDSTATION_FUZZ_SECONDS per target,
# default 60) run alongside them at idle CPU and I/O priority; their failure fails the run too.
# A hung test must fail the run loudly, long before CI's own 90-minute limit.
# On 2 cores (2026-12-03, a cold clean clone, docs/BENCHMARKS.md): clippy 2.6 min, the
# failpoint check's build 1.1 min, the test build 9.7 min, the binaries 712 s in lanes with the
# fuzz build and runs alongside (ending 160 s after them): all green in 29 min. Each phase
# prints its start time.
# IDSTATION_TEST_TIMEOUT overrides the limit (timeout(1) syntax).
limit="${IDSTATION_TEST_TIMEOUT:-55m}"
rc=0
timeout --kill-after=30s "$limit" python3 scripts/run-tests.py --alongside "bash scripts/fuzz.sh" || rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "== [$(elapsed)] FAILED: the tests did not finish within $limit (a test hangs); pcscd log: /tmp/idstation-pcscd.log" >&2
  exit 1
fi
[ "$rc" -eq 0 ] || { echo "== [$(elapsed)] FAILED: the tests (or the fuzz targets alongside) exited $rc" >&2; exit "$rc"; }
echo "== [$(elapsed)] all green"
