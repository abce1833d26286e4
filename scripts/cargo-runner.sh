#!/bin/sh
# Cargo's target runner (.cargo/config.toml): run "$@" with a private SoftHSM2 configuration,
# SOFTHSM2_CONF=DIR/softhsm2.conf in a fresh 0700 directory, removed when the process ends.
# hsm::pkcs11::test_token and the CA tests keep their tokens there; binaries started by a test
# inherit it, and the idstation binaries restart themselves with their data dir's own
# configuration.
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/idstation-proc.XXXXXX") || exit 1
SOFTHSM2_CONF="$dir/softhsm2.conf" "$@"
rc=$?
rm -rf "$dir"
exit "$rc"
