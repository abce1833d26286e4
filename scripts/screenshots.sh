#!/usr/bin/env bash
# PNG screenshots of the real station window (eframe, wgpu on Mesa) under Xvfb, saved into
# docs/screenshots/: the log-in screen and each role's workspace on a fresh demo data dir, and the
# clerk's Card services workspace with a card issued on a vchip card in "Virtual PCD 00 00"
# (pcscd with vpcd running; the card part holds /tmp/idstation-pcsc.lock like the tests).
# The operator logs in by keyboard like a person (xdotool types into the window).
# Needs: xvfb, xdotool, imagemagick (`import`), mesa-vulkan-drivers (or Mesa GL), softhsm2.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/docs/screenshots"
mkdir -p "$OUT"
for tool in Xvfb xdotool import; do
  command -v "$tool" >/dev/null || { echo "screenshots.sh: $tool missing (apt-get install xvfb xdotool imagemagick)" >&2; exit 1; }
done

cargo build -p station -p gui -p chip --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

WORK=$(mktemp -d)
DATA="$WORK/data"
XPID=""
GPID=""
cleanup() {
  [ -n "$GPID" ] && kill "$GPID" 2>/dev/null || true
  [ -n "$XPID" ] && kill "$XPID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

(umask 077; echo "screenshot-hsm-pin-$$" > "$WORK/hsm.pin")
# Secrets on standard input, one per line (never the environment).
printf '%s\n' shot-admin-password | "$BIN/idstation" --data-dir "$DATA" init \
  --hsm-pin-file "$WORK/hsm.pin" --office TAS01 --station screenshots --admin admin >/dev/null
for op in clerk auditor; do
  printf '%s\n' shot-admin-password "shot-$op-password" |
    "$BIN/idstation" --data-dir "$DATA" operator add --name "$op" --role "$op" --operator admin >/dev/null
done

# A free X display number.
N=97
while [ -e "/tmp/.X11-unix/X$N" ] || [ -e "/tmp/.X$N-lock" ]; do N=$((N + 1)); done
Xvfb ":$N" -screen 0 1280x800x24 -nolisten tcp -noreset >/dev/null 2>&1 &
XPID=$!
export DISPLAY=":$N"
sleep 1

start_gui() {
  "$BIN/idstation-gui" --data-dir "$DATA" --reader "${1:-no-reader-in-screenshots}" >"$WORK/gui.log" 2>&1 &
  GPID=$!
  for _ in $(seq 1 100); do
    WID=$(xdotool search --name '^idstation$' 2>/dev/null | head -n 1 || true)
    [ -n "$WID" ] && break
    sleep 0.2
  done
  [ -n "$WID" ] || { cat "$WORK/gui.log" >&2; echo "screenshots.sh: no window" >&2; exit 1; }
  sleep 2
}

stop_gui() {
  kill "$GPID"
  wait "$GPID" 2>/dev/null || true
  GPID=""
}

shot() {
  sleep 3
  import -window root "$OUT/$1.png"
  echo "wrote docs/screenshots/$1.png"
}

# The log-in screen, in English and in Uzbek (Latin); then each role's workspace in both. The
# language is chosen on the log-in screen by keyboard: Tab from the password field reaches the
# language buttons (Oʻzbekcha, Ўзбекча, Русский, English), Space picks one, Shift+Tab goes back
# to the password field and Return logs in.
start_gui
shot login
xdotool windowfocus --sync "$WID" 2>/dev/null || xdotool windowfocus "$WID"
# egui moves the focus once a frame: one key at a time.
xdotool key --delay 400 Tab Tab space
shot login-uz-Latn
stop_gui

for lang in en uz-Latn; do
  case $lang in
    en) tabs=4; suffix="" ;;
    uz-Latn) tabs=1; suffix="-uz-Latn" ;;
  esac
  for role in clerk admin auditor; do
    case $role in
      clerk) pw=shot-clerk-password; name=clerk ;;
      admin) pw=shot-admin-password; name=ca-admin ;;
      auditor) pw=shot-auditor-password; name=auditor ;;
    esac
    start_gui
    # No window manager under Xvfb: give the window the X input focus, then type as a person.
    # The operator field has the keyboard focus when the window opens.
    xdotool windowfocus --sync "$WID" 2>/dev/null || xdotool windowfocus "$WID"
    # egui moves the focus once a frame: one key at a time, with a pause.
    xdotool type --delay 60 "$role"
    sleep 0.4
    xdotool key Tab
    sleep 0.4
    xdotool type --delay 60 "$pw"
    sleep 0.4
    for _ in $(seq 1 "$tabs"); do xdotool key Tab; sleep 0.4; done
    xdotool key space
    sleep 0.4
    for _ in $(seq 1 "$tabs"); do xdotool key shift+Tab; sleep 0.4; done
    xdotool key Return
    shot "$name$suffix"
    stop_gui
  done
done

# The clerk's Card services workspace with an issued card in the reader, in both languages: a
# card issued with the CLI (the holder's PIN on --pin-fd 0), then the clerk logs in (language
# chosen as above), Alt+2 opens Card services and the card in the reader is read.
READER="Virtual PCD 00 00"
exec 9>/tmp/idstation-pcsc.lock
flock 9
"$BIN/vchip" create --out "$WORK/card.img" --serial 4096 >/dev/null
"$BIN/vchip" insert "$WORK/card.img" --port 35963 >"$WORK/vchip.log" 2>&1 &
VPID=$!
trap 'kill $VPID 2>/dev/null || true; cleanup' EXIT
sleep 2
printf '%s\n' shot-clerk-password 48291637 |
  "$BIN/idstation" --data-dir "$DATA" issue --holder station/tests/fixtures/holders/holder-01.json \
  --reader "$READER" --pin-fd 0 --pin-letter "$WORK/letter.pdf" --operator clerk >/dev/null
for lang in en uz-Latn; do
  case $lang in
    en) tabs=4; suffix="" ;;
    uz-Latn) tabs=1; suffix="-uz-Latn" ;;
  esac
  start_gui "$READER"
  xdotool windowfocus --sync "$WID" 2>/dev/null || xdotool windowfocus "$WID"
  xdotool type --delay 60 clerk
  sleep 0.4
  xdotool key Tab
  sleep 0.4
  xdotool type --delay 60 shot-clerk-password
  sleep 0.4
  for _ in $(seq 1 "$tabs"); do xdotool key Tab; sleep 0.4; done
  xdotool key space
  sleep 0.4
  for _ in $(seq 1 "$tabs"); do xdotool key shift+Tab; sleep 0.4; done
  xdotool key Return
  sleep 3
  xdotool key alt+2
  sleep 4
  shot "services$suffix"
  stop_gui
done
