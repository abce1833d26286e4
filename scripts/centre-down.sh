#!/usr/bin/env bash
# Usage: scripts/centre-down.sh DIR — stops what scripts/centre-up.sh DIR started: the
# `idcentral serve` process and the private PostgreSQL cluster. The data stays.
set -euo pipefail
DIR=${1:?usage: centre-down.sh DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$DIR/serve.pid" ] && kill -0 "$(cat "$DIR/serve.pid")" 2>/dev/null; then
  kill "$(cat "$DIR/serve.pid")"
fi
rm -f "$DIR/serve.pid"
bash "$ROOT/scripts/pg-down.sh" "$DIR/pg"
