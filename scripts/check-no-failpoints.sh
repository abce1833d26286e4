#!/usr/bin/env bash
# Proves that a build without the `failpoints` feature (what `cargo build` and
# `cargo build --release` make) carries no failpoint code: the name of its environment
# variable, IDSTATION_FAILPOINT, must not be in the `idstation` binary (nor IDCENTRAL_FAILPOINT in
# `idcentral`). PROFILE=release checks
# the release build (slower: a full optimised build); the default checks the dev build, which
# cargo compiles with the same features.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${PROFILE:-dev}"
cargo build -p station --bin idstation -p central --bin idcentral --profile "$profile"
dir="${CARGO_TARGET_DIR:-target}/$([ "$profile" = dev ] && echo debug || echo "$profile")"
bin="$dir/idstation"
[ -x "$bin" ] || { echo "== FAILED: no binary at $bin" >&2; exit 1; }
if grep -c -a IDSTATION_FAILPOINT "$bin" >/dev/null; then
  echo "== FAILED: $bin ($profile) contains IDSTATION_FAILPOINT: failpoint code in a build without the failpoints feature" >&2
  exit 1
fi
echo "== $bin ($profile, $(stat -c %s "$bin") bytes): no IDSTATION_FAILPOINT, no failpoint code"
central="$dir/idcentral"
[ -x "$central" ] || { echo "== FAILED: no binary at $central" >&2; exit 1; }
if grep -c -a IDCENTRAL_FAILPOINT "$central" >/dev/null; then
  echo "== FAILED: $central ($profile) contains IDCENTRAL_FAILPOINT: failpoint code in a build without the failpoints feature" >&2
  exit 1
fi
echo "== $central ($profile, $(stat -c %s "$central") bytes): no IDCENTRAL_FAILPOINT, no failpoint code"
