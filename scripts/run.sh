#!/usr/bin/env bash
# Builds and runs the system on the embedded demo default: a local national centre (a private
# PostgreSQL cluster, `idcentral` with its CAs in its own SoftHSM2 token, serving HTTPS on
# 127.0.0.1:8443: scripts/centre-up.sh), a demo station enrolled to it (its own SoftHSM2 token
# with its identity, audit and Document Signer keys; a registry with a demo ca-admin, clerk and
# auditor), and a blank virtual card in a virtual reader; then it opens the station GUI on that
# data dir. Idempotent: an existing demo data dir and centre are reused, never overwritten (a
# demo dir made before the centre stays a standalone station). IDSTATION_NO_GUI=1 (or no
# display) only prints how to issue from the command line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

bash scripts/install-deps.sh
cargo build --release -p station -p chip -p gui -p central --bins

DEMO_DIR=${IDSTATION_DEMO_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/idstation-demo}
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
mkdir -p "$DEMO_DIR/secrets"
chmod 700 "$DEMO_DIR/secrets"
# The station refuses to start on a data dir that group or others can enter (docs/security.md);
# init makes it 0700, and demo dirs made before that rule get it here.
chmod 700 "$DEMO_DIR"

# The demo HSM user PIN: random, generated once, kept in a 0600 file the config names.
# (A production station names an operator-provisioned file or an environment variable.)
PIN_FILE="$DEMO_DIR/secrets/hsm-user.pin"
if [ ! -s "$PIN_FILE" ]; then
  (umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$PIN_FILE")
fi

# Documented demo passwords (README): a real station sets its own. Shell variables, not
# exported: idstation reads secrets from standard input (one per line: the operator's
# password, then the new operator's), never from the environment.
DEMO_ADMIN_PASSWORD=demo-admin-password
DEMO_CLERK_PASSWORD=demo-clerk-password
DEMO_AUDITOR_PASSWORD=demo-auditor-password
DEMO_CENTRE_ADMIN_PASSWORD=demo-centre-admin-password

# The local national centre (docs/centre.md). As root its PostgreSQL server runs as the
# `postgres` user, which cannot enter root's home: the centre lives under /var/tmp.
CENTRE_DIR=${IDSTATION_DEMO_CENTRE_DIR:-/var/tmp/idstation-demo-centre}
CENTRE_PORT=${IDSTATION_DEMO_CENTRE_PORT:-8443}
CENTRE_URL=$(printf '%s\n' "$DEMO_CENTRE_ADMIN_PASSWORD" |
  IDCENTRAL_BIN="$BIN/idcentral" bash scripts/centre-up.sh "$CENTRE_DIR" "$CENTRE_PORT")
IDCENTRAL=("$BIN/idcentral" --config "$CENTRE_DIR/centre.toml")

if [ ! -f "$DEMO_DIR/station.toml" ]; then
  # A one-time enrolment code from the centre, then the station's enrolment with it (the code
  # on standard input after the admin password, never in argv).
  STATION_NAME="demo-st-$(date +%Y%m%d%H%M%S)"
  CODE=$(printf '%s\n' "$DEMO_CENTRE_ADMIN_PASSWORD" |
    "${IDCENTRAL[@]}" --json station add --office TAS01 --station "$STATION_NAME" --operator admin |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["enrolment_code"])')
  printf '%s\n' "$DEMO_ADMIN_PASSWORD" "$CODE" |
    "$BIN/idstation" --data-dir "$DEMO_DIR" init --centre "$CENTRE_URL" \
      --centre-fingerprint "$(cat "$CENTRE_DIR/fingerprint")" --enrolment-code - \
      --hsm-pin-file "$PIN_FILE" --station "$STATION_NAME" --admin admin
  unset CODE
  printf '%s\n' "$DEMO_ADMIN_PASSWORD" "$DEMO_CLERK_PASSWORD" |
    "$BIN/idstation" --data-dir "$DEMO_DIR" operator add --name clerk --role clerk --operator admin
fi
# The demo auditor (added once; demo dirs made before the GUI get it on their next run).
if [ ! -f "$DEMO_DIR/.demo-auditor" ]; then
  printf '%s\n' "$DEMO_ADMIN_PASSWORD" "$DEMO_AUDITOR_PASSWORD" |
    "$BIN/idstation" --data-dir "$DEMO_DIR" operator add --name auditor --role auditor --operator admin \
    && touch "$DEMO_DIR/.demo-auditor"
fi

# A virtual reader ("Virtual PCD 00 00") with a blank virtual card in it.
bash scripts/pcsc-up.sh
# The newest demo card stays in the reader while it is blank; once issued (or half-personalized)
# it is taken out and a new blank card goes in, so every run offers a card to issue.
mkdir -p "$DEMO_DIR/cards"
CARD=$(ls -1t "$DEMO_DIR"/cards/demo-card*.img 2>/dev/null | head -n 1 || true)
if [ -z "$CARD" ] || ! "$BIN/vchip" show --json "$CARD" | grep -q '"lifecycle": "blank"'; then
  if [ -n "$CARD" ]; then
    for pid in $(pgrep -f "vchip insert $CARD" || true); do kill "$pid"; done
    sleep 1
  fi
  CARD="$DEMO_DIR/cards/demo-card-$(date +%Y%m%d-%H%M%S).img"
  "$BIN/vchip" create --out "$CARD"
fi
if ! pgrep -f "vchip insert $CARD" >/dev/null; then
  # Hold the slot's lease (the same flock the test rig takes) for as long as the demo card is in
  # the reader, so a test run on this machine picks another slot instead of finding a stray card.
  LEASE=/tmp/idstation-vpcd-35963.lock
  if ! flock -n "$LEASE" true; then
    echo "run.sh: slot 35963 (Virtual PCD 00 00) is leased by a running test; try again when it ends" >&2
    exit 1
  fi
  setsid nohup flock -n "$LEASE" "$BIN/vchip" insert "$CARD" --port 35963 > "$DEMO_DIR/vchip.log" 2>&1 < /dev/null &
  for _ in $(seq 1 50); do
    "$BIN/idstation" --data-dir "$DEMO_DIR" readers 2>/dev/null | grep -q "^Virtual PCD 00 00.card" && break
    sleep 0.2
  done
fi

"$BIN/idstation" --data-dir "$DEMO_DIR" ca show
if grep -q '^\[centre\]' "$DEMO_DIR/station.toml"; then
  "$BIN/idstation" --data-dir "$DEMO_DIR" centre status
else
  echo "$DEMO_DIR is a standalone station (made before the demo had a centre); remove it to get one enrolled to the centre"
fi
"$BIN/idstation" --data-dir "$DEMO_DIR" readers
cat <<MSG

Demo station ready in $DEMO_DIR. Operators: admin / $DEMO_ADMIN_PASSWORD (CA admin),
clerk / $DEMO_CLERK_PASSWORD, auditor / $DEMO_AUDITOR_PASSWORD.
National centre at $CENTRE_URL (data in $CENTRE_DIR; ca-admin admin / $DEMO_CENTRE_ADMIN_PASSWORD;
stop it with scripts/centre-down.sh $CENTRE_DIR). Its relying-party services (OCSP, CRLs, CA
certificates, time-stamps; docs/relying-parties.md) answer on http://127.0.0.1:$((CENTRE_PORT + 1)),
e.g. curl -s http://127.0.0.1:$((CENTRE_PORT + 1))/ca/root-ca-1.cer | openssl x509 -inform DER -noout -subject
What it holds of a holder:
  printf '%s\\n' $DEMO_CENTRE_ADMIN_PASSWORD | ${IDCENTRAL[*]} show --pinfl 41505852610128 --operator admin
GUI: $BIN/idstation --data-dir $DEMO_DIR gui --reader "Virtual PCD 00 00"
Or issue the blank card from the command line with
(one active card per holder: for the next card take holder-02/-03, or revoke the first one):
  $BIN/idstation --data-dir $DEMO_DIR issue --holder station/tests/fixtures/holders/holder-01.json \\
    --reader "Virtual PCD 00 00" --pin-letter \$HOME/pin-letter-holder-01.pdf --operator clerk
(the clerk types their password, then the holder types the PIN twice; the PIN letter with the
station's random PUK is written to the file --pin-letter names)
MSG

if [ "${IDSTATION_NO_GUI:-0}" != 1 ] && { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }; then
  echo "Opening the station GUI (log in as clerk to issue the card in Virtual PCD 00 00)..."
  exec "$BIN/idstation" --data-dir "$DEMO_DIR" gui --reader "Virtual PCD 00 00"
elif [ "${IDSTATION_NO_GUI:-0}" != 1 ]; then
  echo "No display (DISPLAY/WAYLAND_DISPLAY unset): the GUI was not opened. Under a headless"
  echo "machine run it in Xvfb: xvfb-run -a -s '-screen 0 1280x800x24' $BIN/idstation --data-dir $DEMO_DIR gui"
fi
