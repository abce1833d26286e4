#!/usr/bin/env bash
# Promote the standby scripts/pg-replica.sh made under DIR to primary (after the primary died),
# and make sure it does not wait for a synchronous standby it does not have.
#
#   scripts/pg-promote.sh DIR
#
# `pg_ctl promote -w` ends recovery and waits until the server accepts writes. The promoted node
# then has no standby: its synchronous_standby_names must be empty or every commit would wait
# for ever. pg-replica.sh never gives a standby one; this checks, and clears it (ALTER SYSTEM,
# reload) if something set it. Promoting a server that already is a primary changes nothing.
set -euo pipefail
dir=${1:?usage: scripts/pg-promote.sh DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
die() { echo "pg-promote: $*" >&2; exit 1; }
[ -f "$dir/data/PG_VERSION" ] || die "DIR $dir: no cluster"
dir=$(cd "$dir" && pwd)
run_as=()
if [ "$(id -u)" -eq 0 ]; then run_as=(runuser -u postgres --); fi
as() { "${run_as[@]}" "$@"; }
port=$(cat "$dir/port")
psql_here() { as "$bin/psql" -v ON_ERROR_STOP=1 -qAt -h "$dir/socket" -p "$port" -d postgres "$@"; }

as "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || die "DIR $dir: the server is not running"
if [ "$(psql_here -c 'SELECT pg_is_in_recovery()')" = t ]; then
  as "$bin/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null || { tail -20 "$dir/log" >&2; exit 1; }
fi
[ "$(psql_here -c 'SELECT pg_is_in_recovery()')" = f ] || die "DIR $dir: still in recovery after promotion"
if [ -n "$(psql_here -c 'SHOW synchronous_standby_names')" ]; then
  psql_here -c "ALTER SYSTEM SET synchronous_standby_names = ''" >/dev/null
  psql_here -c 'SELECT pg_reload_conf()' >/dev/null
  echo "pg-promote: cleared synchronous_standby_names (this node has no standby)" >&2
fi
echo "promoted: postgres://idcentral@127.0.0.1:$port/idcentral"
