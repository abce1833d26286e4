#!/usr/bin/env bash
# Create (once) and start a private PostgreSQL cluster under DIR, idempotently, and print its URL.
#
#   scripts/pg-up.sh DIR [PORT]
#
# DIR/data      the cluster (initdb; owned by the user the server runs as)
# DIR/socket    its unix socket directory; DIR/port its TCP port on 127.0.0.1
# DIR/password  the password of the role `idcentral` (0600), owner of the database `idcentral`;
#               the centre reads it from this file (never from argv or the environment)
# DIR/url       postgres://idcentral@127.0.0.1:PORT/idcentral (no password in it)
# DIR/log       the server log
#
# PG_UP_OPTIONS, when set, adds server options at start (a bench's profile, e.g.
# "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all").
#
# Local (socket) connections authenticate by peer, TCP ones by scram-sha-256. Debian 12's
# `postgresql` package (15) keeps initdb and pg_ctl under /usr/lib/postgresql/15/bin. initdb
# refuses root, so as root the cluster runs as the package's `postgres` user, and DIR's parent
# directories must let that user through.
set -euo pipefail

dir=${1:?usage: scripts/pg-up.sh DIR [PORT]}
want_port=${2:-}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "pg-up: PostgreSQL is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }

run_as=()
owner=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  run_as=(runuser -u postgres --)
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ "$(id -u)" -eq 0 ]; then chown "$owner" "$dir"; fi
chmod 0700 "$dir"
as() { "${run_as[@]}" "$@"; }

if [ ! -s "$dir/port" ]; then
  port=${want_port:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  echo "$port" > "$dir/port"
fi
port=$(cat "$dir/port")
url="postgres://idcentral@127.0.0.1:$port/idcentral"

if [ ! -f "$dir/data/PG_VERSION" ]; then
  rm -rf "$dir/data"
  ( umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$dir/password" )
  as mkdir -p "$dir/socket"
  as "$bin/initdb" -D "$dir/data" -U "$owner" --auth-local=peer --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  fresh=1
else
  fresh=0
fi

if ! as "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-k $dir/socket -p $port -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on ${PG_UP_OPTIONS:-}" \
    start >/dev/null || { tail -20 "$dir/log" >&2; exit 1; }
fi

if [ "$fresh" -eq 1 ]; then
  # The password goes to psql on standard input (printf is a builtin), never on a command line.
  pw=$(cat "$dir/password")
  {
    printf '\\set pw %s\n' "$pw"
    cat <<'SQL'
CREATE ROLE idcentral LOGIN PASSWORD :'pw';
CREATE DATABASE idcentral OWNER idcentral;
SQL
  } | as "$bin/psql" -v ON_ERROR_STOP=1 -q -h "$dir/socket" -p "$port" -d postgres >/dev/null
  unset pw
fi
# The role the centre's sessions act as (SET ROLE): it may read and write the registry but not
# change or remove audit events (central/migrations/V6). Created once, on every run if missing.
as "$bin/psql" -v ON_ERROR_STOP=1 -q -h "$dir/socket" -p "$port" -d postgres >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'idcentral_app') THEN
    CREATE ROLE idcentral_app NOLOGIN;
  END IF;
END $$;
GRANT idcentral_app TO idcentral;
SQL
echo "$url" > "$dir/url"
echo "$url"
