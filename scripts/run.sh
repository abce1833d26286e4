#!/usr/bin/env bash
# Builds and runs the station on the embedded demo default: a demo data dir with a SoftHSM2
# token, the CA hierarchy and a blank virtual card in a virtual reader. Idempotent: an existing
# demo data dir is reused, never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

bash scripts/install-deps.sh
cargo build --release -p station -p chip --bins

DEMO_DIR=${IDSTATION_DEMO_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/idstation-demo}
BIN="$ROOT/target/release"
mkdir -p "$DEMO_DIR/secrets"
chmod 700 "$DEMO_DIR/secrets"

# The demo HSM user PIN: random, generated once, kept in a 0600 file the config names.
# (A production station names an operator-provisioned file or an environment variable.)
PIN_FILE="$DEMO_DIR/secrets/hsm-user.pin"
if [ ! -s "$PIN_FILE" ]; then
  (umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$PIN_FILE")
fi

if [ ! -f "$DEMO_DIR/station.toml" ]; then
  "$BIN/idstation" --data-dir "$DEMO_DIR" init --hsm-pin-file "$PIN_FILE" --office TAS01 --station demo-station
fi

# A virtual reader with a blank virtual card in it.
bash scripts/pcsc-up.sh
CARD="$DEMO_DIR/cards/demo-card.img"
mkdir -p "$DEMO_DIR/cards"
[ -f "$CARD" ] || "$BIN/vchip" create --out "$CARD"
if ! pgrep -f "vchip insert $CARD" >/dev/null; then
  nohup "$BIN/vchip" insert "$CARD" --port 35963 > "$DEMO_DIR/vchip.log" 2>&1 &
  sleep 1
fi

"$BIN/idstation" --data-dir "$DEMO_DIR" ca show
