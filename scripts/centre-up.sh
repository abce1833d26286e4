#!/usr/bin/env bash
# Usage: scripts/centre-up.sh DIR [PORT [PUBLIC_PORT]]
#
# A local national centre for the demo (docs/centre.md), idempotent: a private PostgreSQL
# cluster under DIR/pg (scripts/pg-up.sh), DIR/centre.toml with its own SoftHSM2 token under
# DIR/hsm and a random HSM PIN in DIR/secrets/hsm-pin (0600), `idcentral init` once (the first
# ca-admin `admin`, whose password is the first line of standard input; only read at init), and
# `idcentral serve --listen 127.0.0.1:PORT` in the background, with the relying-party services
# (OCSP, CRLs, CA certificates, time-stamps: docs/relying-parties.md) on plain HTTP at
# 127.0.0.1:PUBLIC_PORT (default PORT+1), which the certificates it issues name (pid in DIR/serve.pid, log in
# DIR/serve.log) unless it already runs. Prints the centre's URL (only that, on standard output;
# what init prints goes to standard error) and writes the SHA-256
# fingerprint of its TLS certificate to DIR/fingerprint (what `idstation init
# --centre-fingerprint` takes). `scripts/centre-down.sh DIR` stops it.
#
# As root the PostgreSQL server runs as the `postgres` user, so DIR and its parents must let
# that user pass (DIR is made 0711; /var/tmp or /tmp work, root's home does not).
set -euo pipefail
DIR=${1:?usage: centre-up.sh DIR [PORT]}
PORT=${2:-8443}
PUBLIC_PORT=${3:-$((PORT + 1))}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${IDCENTRAL_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/idcentral}
[ -x "$BIN" ] || { echo "centre-up: $BIN not built (cargo build --release -p central)" >&2; exit 1; }

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
chmod 711 "$DIR"
bash "$ROOT/scripts/pg-up.sh" "$DIR/pg" >/dev/null
URL=$(cat "$DIR/pg/url")

umask 077
mkdir -p "$DIR/secrets" "$DIR/hsm"
chmod 700 "$DIR/secrets" "$DIR/hsm"
PIN_FILE="$DIR/secrets/hsm-pin"
if [ ! -s "$PIN_FILE" ]; then
  (umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$PIN_FILE"; echo >> "$PIN_FILE")
fi

CONFIG="$DIR/centre.toml"
if [ ! -f "$CONFIG" ]; then
  (umask 077; cat > "$CONFIG" <<TOML
[centre]
name = "centre"

[database]
url = "$URL"
password_file = "$DIR/pg/password"

[hsm]
backend = "pkcs11"
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "idcentral"
pin = { file = "$PIN_FILE" }
env = { SOFTHSM2_CONF = "$DIR/hsm/softhsm2.conf" }

[server]
listen = "127.0.0.1:$PORT"
public_name = "localhost"

[public]
listen = "127.0.0.1:$PUBLIC_PORT"
base_url = "http://127.0.0.1:$PUBLIC_PORT"
TOML
  )
fi

if [ ! -f "$DIR/.initialised" ]; then
  # The admin password: the first line of our standard input, handed on the same way.
  IFS= read -r ADMIN_PASSWORD || { echo "centre-up: the admin password is the first line of standard input" >&2; exit 2; }
  printf '%s\n' "$ADMIN_PASSWORD" | "$BIN" --config "$CONFIG" init --admin admin >&2
  unset ADMIN_PASSWORD
  touch "$DIR/.initialised"
fi

running() { [ -f "$DIR/serve.pid" ] && kill -0 "$(cat "$DIR/serve.pid")" 2>/dev/null; }
if ! running; then
  : > "$DIR/serve.log"
  chmod 600 "$DIR/serve.log"
  setsid nohup "$BIN" --config "$CONFIG" serve --listen "127.0.0.1:$PORT" >> "$DIR/serve.log" 2>&1 < /dev/null &
  echo $! > "$DIR/serve.pid"
  for _ in $(seq 1 150); do
    grep -q '^TLS SHA256 Fingerprint=' "$DIR/serve.log" && break
    running || { cat "$DIR/serve.log" >&2; echo "centre-up: idcentral serve stopped" >&2; exit 1; }
    sleep 0.2
  done
fi
FP=$(grep -m1 '^TLS SHA256 Fingerprint=' "$DIR/serve.log" | cut -d= -f2)
[ -n "$FP" ] || { cat "$DIR/serve.log" >&2; echo "centre-up: no fingerprint in $DIR/serve.log" >&2; exit 1; }
echo "$FP" > "$DIR/fingerprint"
echo "https://127.0.0.1:$PORT"
