#!/usr/bin/env bash
# Add (once) and start a synchronous streaming-replication standby of the private cluster
# scripts/pg-up.sh made under PRIMARY_DIR, idempotently, and print the centre's multi-host URL.
#
#   scripts/pg-replica.sh PRIMARY_DIR STANDBY_DIR [PORT]
#
# On the primary (which must be running):
#   - the role `idcentral_replication` (REPLICATION LOGIN); its password is generated once into
#     PRIMARY_DIR/replication-password (0600) and set from that file on every run;
#   - a pg_hba.conf line `host replication ... 127.0.0.1/32 scram-sha-256` (initdb's default
#     `host replication all 127.0.0.1/32` already is one; a line is added only when none matches);
#   - a physical replication slot named after the standby (`standby_<basename of STANDBY_DIR>`),
#     so the primary keeps the WAL the standby has not received yet;
#   - synchronous_standby_names = that name (ALTER SYSTEM, then a reload), set once the standby
#     streams: from then on a commit is acknowledged only when the standby has flushed it.
# STANDBY_DIR, laid out as pg-up.sh's:
#   data        pg_basebackup -X stream -R of the primary, with standby.signal; its
#               postgresql.auto.conf holds primary_conninfo (passfile, application_name = the
#               slot's name, no password) and primary_slot_name, and never
#               synchronous_standby_names: promoted, this node has no standby and must not wait
#               for one (scripts/pg-promote.sh checks it again)
#   socket, port, log
#   replication.pgpass   the replication password in libpq's passfile format (0600, owned by
#               the server's user)
#   password    a copy of PRIMARY_DIR/password (the role `idcentral` is replicated)
#   url         postgres://idcentral@127.0.0.1:P2/idcentral (the standby alone)
#   url-multi   postgres://idcentral@127.0.0.1:P1,127.0.0.1:P2/idcentral?target_session_attrs=read-write
#               (also printed): the centre's database.url; it connects to whichever is the primary
#
# No password is ever on a command line: psql reads it from standard input, libpq from the
# passfile. As root everything runs as the `postgres` user (see pg-up.sh).
set -euo pipefail

usage="usage: scripts/pg-replica.sh PRIMARY_DIR STANDBY_DIR [PORT]"
primary=${1:?$usage}
standby=${2:?$usage}
want_port=${3:-}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/pg_basebackup" ] || { echo "pg-replica: PostgreSQL is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
die() { echo "pg-replica: $*" >&2; exit 1; }

run_as=()
owner=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  run_as=(runuser -u postgres --)
fi
as() { "${run_as[@]}" "$@"; }

[ -f "$primary/data/PG_VERSION" ] || die "PRIMARY_DIR $primary: no cluster (run scripts/pg-up.sh $primary first)"
primary=$(cd "$primary" && pwd)
p1=$(cat "$primary/port")
as "$bin/pg_ctl" -D "$primary/data" status >/dev/null 2>&1 \
  || die "PRIMARY_DIR $primary: the primary is not running (scripts/pg-up.sh $primary starts it)"
[ "$(as "$bin/psql" -qAt -h "$primary/socket" -p "$p1" -d postgres -c 'SELECT pg_is_in_recovery()')" = f ] \
  || die "PRIMARY_DIR $primary: that server is itself a standby; name the primary"

mkdir -p "$standby"
standby=$(cd "$standby" && pwd)
[ "$standby" != "$primary" ] || die "STANDBY_DIR must differ from PRIMARY_DIR"
if [ "$(id -u)" -eq 0 ]; then chown "$owner" "$standby"; fi
chmod 0700 "$standby"

base=$(basename "$standby" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_\n' '_' | tr -d '\n')
name="standby_${base}"
name=${name:0:63}
role=idcentral_replication

psql_primary() { as "$bin/psql" -v ON_ERROR_STOP=1 -qAt -h "$primary/socket" -p "$p1" -d postgres "$@"; }

# The replication role and its password (a file, never argv).
if [ ! -s "$primary/replication-password" ]; then
  ( umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$primary/replication-password" )
fi
rpw=$(head -1 "$primary/replication-password")
{
  printf '\\set pw %s\n' "$rpw"
  cat <<SQL
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$role') AS create_it \\gset
\\if :create_it
CREATE ROLE $role WITH REPLICATION LOGIN PASSWORD :'pw';
\\else
ALTER ROLE $role WITH REPLICATION LOGIN PASSWORD :'pw';
\\endif
SQL
} | psql_primary >/dev/null

# pg_hba.conf: replication over TCP on 127.0.0.1 with scram-sha-256.
hba="$primary/data/pg_hba.conf"
if ! grep -Eq "^[[:space:]]*host[[:space:]]+replication[[:space:]]+(all|$role)[[:space:]]+127\.0\.0\.1/32[[:space:]]+scram-sha-256" "$hba"; then
  printf 'host    replication     %s  127.0.0.1/32            scram-sha-256\n' "$role" >> "$hba"
fi
psql_primary -c 'SELECT pg_reload_conf()' >/dev/null

# The slot.
psql_primary >/dev/null <<SQL
SELECT pg_create_physical_replication_slot('$name')
  WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$name');
SQL

# The standby's passfile (libpq format; the database field of a replication connection is
# `replication`), readable by the server's user only.
( umask 077; printf '127.0.0.1:%s:replication:%s:%s\n' "$p1" "$role" "$rpw" > "$standby/replication.pgpass" )
unset rpw
if [ "$(id -u)" -eq 0 ]; then chown "$owner" "$standby/replication.pgpass"; fi
( umask 077; cp "$primary/password" "$standby/password" )

if [ ! -s "$standby/port" ]; then
  port=${want_port:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  echo "$port" > "$standby/port"
fi
p2=$(cat "$standby/port")

if [ ! -f "$standby/data/PG_VERSION" ]; then
  as rm -rf "$standby/data"
  as mkdir -p "$standby/socket"
  as env PGPASSFILE="$standby/replication.pgpass" "$bin/pg_basebackup" \
    -h 127.0.0.1 -p "$p1" -U "$role" -w -D "$standby/data" -X stream -S "$name" -R -c fast \
    >"$standby/basebackup.log" 2>&1 \
    || { cat "$standby/basebackup.log" >&2; exit 1; }
  # pg_basebackup -R wrote primary_conninfo with the password in it; replace it by one that
  # names the passfile, and drop what the primary's own postgresql.auto.conf carried over.
  auto="$standby/data/postgresql.auto.conf"
  as sh -c 'grep -Ev "^[[:space:]]*(primary_conninfo|primary_slot_name|synchronous_standby_names)[[:space:]]*=" "$1" > "$1.new" || true; mv "$1.new" "$1"; chmod 0600 "$1"' sh "$auto"
  as sh -c 'cat >> "$1"' sh "$auto" <<CONF
primary_conninfo = 'host=127.0.0.1 port=$p1 user=$role passfile=''$standby/replication.pgpass'' application_name=$name sslmode=disable'
primary_slot_name = '$name'
CONF
fi
[ -f "$standby/data/standby.signal" ] || die "STANDBY_DIR $standby: its cluster is not a standby (promoted already?); remove $standby/data to make a new one"

if ! as "$bin/pg_ctl" -D "$standby/data" status >/dev/null 2>&1; then
  as "$bin/pg_ctl" -D "$standby/data" -l "$standby/log" -w -t 60 \
    -o "-k $standby/socket -p $p2 -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on" \
    start >/dev/null || { tail -20 "$standby/log" >&2; exit 1; }
fi

# Wait until it streams, then make it the synchronous standby, and wait until it is.
state() {
  psql_primary -c "SELECT coalesce((SELECT sync_state FROM pg_stat_replication WHERE application_name = '$name' AND state = 'streaming'), 'none')"
}
for _ in $(seq 1 300); do
  [ "$(state)" != none ] && break
  sleep 0.2
done
[ "$(state)" != none ] || { tail -20 "$standby/log" >&2; die "the standby $name does not stream from 127.0.0.1:$p1"; }
current=$(psql_primary -c 'SHOW synchronous_standby_names')
if [ "$current" != "\"$name\"" ] && [ "$current" != "$name" ]; then
  psql_primary -c "ALTER SYSTEM SET synchronous_standby_names = '\"$name\"'" >/dev/null
  psql_primary -c 'SELECT pg_reload_conf()' >/dev/null
fi
for _ in $(seq 1 150); do
  [ "$(state)" = sync ] && break
  sleep 0.2
done
[ "$(state)" = sync ] || die "the standby $name streams but is not synchronous (sync_state $(state))"

echo "postgres://idcentral@127.0.0.1:$p2/idcentral" > "$standby/url"
multi="postgres://idcentral@127.0.0.1:$p1,127.0.0.1:$p2/idcentral?target_session_attrs=read-write"
echo "$multi" > "$standby/url-multi"
echo "$multi"
