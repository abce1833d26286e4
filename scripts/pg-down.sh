#!/usr/bin/env bash
# Stop the private PostgreSQL cluster scripts/pg-up.sh started under DIR (fast shutdown).
#   scripts/pg-down.sh DIR
set -euo pipefail
dir=${1:?usage: scripts/pg-down.sh DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -f "$dir/data/PG_VERSION" ] || exit 0
run_as=()
if [ "$(id -u)" -eq 0 ]; then run_as=(runuser -u postgres --); fi
"${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
