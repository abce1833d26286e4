#!/usr/bin/env bash
# Start pcscd with the vsmartcard vpcd readers idstation uses, idempotently (CI, README).
# - installs scripts/idstation-vpcd.conf as /etc/reader.conf.d/idstation-vpcd and the per-reader
#   driver copies it names (see the comment in that file for why copies are needed);
# - starts `pcscd --foreground` in the background if no pcscd runs (pid in
#   /tmp/idstation-pcscd.pid, log in /tmp/idstation-pcscd.log);
# - waits until pcscd lists the readers. Exits non-zero, loudly, when that fails.
# A pcscd that already runs is never killed; if it lacks our readers you get a warning.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
driver=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
[ -f "$driver" ] || { echo "pcsc-up: $driver missing: apt-get install vsmartcard-vpcd" >&2; exit 1; }
command -v pcscd >/dev/null || { echo "pcsc-up: pcscd missing: apt-get install pcscd" >&2; exit 1; }

# Same lock as the testrig crate, so the rig and this script never race.
exec 9>/tmp/idstation-pcscd.lock
flock 9

mkdir -p /usr/local/lib/idstation-pcsc /etc/reader.conf.d
for lib in libifdvpcd-b.so libifdvpcd-c.so; do
  if ! cmp -s "$driver" "/usr/local/lib/idstation-pcsc/$lib"; then
    cp "$driver" "/usr/local/lib/idstation-pcsc/$lib.tmp.$$"
    mv "/usr/local/lib/idstation-pcsc/$lib.tmp.$$" "/usr/local/lib/idstation-pcsc/$lib"
  fi
done
if ! cmp -s "$here/idstation-vpcd.conf" /etc/reader.conf.d/idstation-vpcd; then
  cp "$here/idstation-vpcd.conf" /etc/reader.conf.d/idstation-vpcd.tmp.$$
  mv /etc/reader.conf.d/idstation-vpcd.tmp.$$ /etc/reader.conf.d/idstation-vpcd
fi

if ! pgrep -x pcscd >/dev/null; then
  mkdir -p /run/pcscd
  # 9>&-: pcscd must not inherit the setup lock, or every later holder of it (the test rig)
  # waits for as long as pcscd runs.
  echo "== pcsc-up.sh starts pcscd ($(date -u +%FT%TZ))" >>/tmp/idstation-pcscd.log
  setsid pcscd --foreground </dev/null >>/tmp/idstation-pcscd.log 2>&1 9>&- &
  echo $! > /tmp/idstation-pcscd.pid
  echo "pcsc-up: started pcscd (pid $!)"
fi

want=("Virtual PCD 00 00" "Virtual PCD 00 01" "Virtual PCD B 00 00" "Virtual PCD B 00 01" "Virtual PCD C 00 00" "Virtual PCD C 00 01")
for _ in $(seq 1 150); do
  list="$(opensc-tool -l 2>/dev/null || true)"
  ok=0
  for r in "${want[@]}"; do grep -qF "$r" <<<"$list" && ok=$((ok+1)); done
  if [ "$ok" -eq "${#want[@]}" ]; then echo "pcsc-up: pcscd offers ${#want[@]} vpcd slots (ports 35963-35968)"; exit 0; fi
  sleep 0.1
done
if [ "$ok" -gt 0 ]; then
  echo "pcsc-up: WARNING: the running pcscd offers only $ok of ${#want[@]} vpcd slots (started before our reader.conf was installed?)" >&2
  exit 0
fi
echo "pcsc-up: pcscd offers no vpcd reader; see /tmp/idstation-pcscd.log" >&2
exit 1
