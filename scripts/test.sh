#!/usr/bin/env bash
# The full test suite, as CI runs it: install what the tests need, start pcscd with our virtual
# readers, then formatting, lints and every test. Fails loudly on the first error.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/pcsc-up.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace --no-fail-fast
echo "== all green"
