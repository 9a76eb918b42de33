#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for tests: a temporary data directory, loopback only, a free
# port, a random password, run as the `postgres` user when invoked as root (initdb refuses root).
#
#   scripts/pg-test-cluster.sh start INFO_DIR   # prints the connection string; writes
#                                               # INFO_DIR/conninfo, INFO_DIR/password,
#                                               # INFO_DIR/datadir, INFO_DIR/port
#   scripts/pg-test-cluster.sh stop  INFO_DIR   # stops the server, removes the data directory
#   scripts/pg-test-cluster.sh pause INFO_DIR   # stops the server, keeps the data (fault tests)
#   scripts/pg-test-cluster.sh resume INFO_DIR  # starts it again on the same port
#
# The connection string has no password: it is in INFO_DIR/password (mode 600).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
info=${2:-}
if [[ -z "$cmd" || -z "$info" ]]; then
  echo "usage: $0 start|stop|pause|resume INFO_DIR" >&2
  exit 2
fi
if [[ ! -x "$PG_BIN/initdb" ]]; then
  echo "pg-test-cluster: $PG_BIN/initdb not found (apt-get install postgresql-15)" >&2
  exit 1
fi

# Runs a PostgreSQL program as the cluster's owner.
as_owner() {
  if [[ "$(id -u)" -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# A port nobody listens on now (bind to 0 and read it back; perl is a dependency of
# postgresql-common, so it is always there).
free_port() {
  perl -MIO::Socket::INET -e \
    'my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0,
       ReuseAddr => 1) or die "bind: $!"; print $s->sockport, "\n";'
}

pg_start() {
  local datadir=$1 port=$2
  as_owner "$PG_BIN/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$datadir" \
    start >/dev/null
}

stop_server() {
  local datadir
  datadir=$(cat "$info/datadir" 2>/dev/null || true)
  if [[ -n "$datadir" && -f "$datadir/postmaster.pid" ]]; then
    as_owner "$PG_BIN/pg_ctl" -D "$datadir" -m fast -w -t 60 stop >/dev/null || true
  fi
}

case "$cmd" in
  start)
    mkdir -p "$info"
    # A cluster left by an interrupted run: stop it and start clean.
    if [[ -f "$info/datadir" ]]; then
      stop_server
      rm -rf "$(dirname "$(cat "$info/datadir")")"
    fi
    rm -f "$info/conninfo" "$info/password" "$info/datadir" "$info/port"
    base=$(mktemp -d /tmp/leyr-pg.XXXXXX)  # base/data: the cluster; base/initdb.*: scratch
    datadir="$base/data"
    password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    (umask 077 && printf '%s\n' "$password" >"$base/initdb.pw")
    if [[ "$(id -u)" -eq 0 ]]; then chown postgres: "$base" "$base/initdb.pw"; fi
    if ! as_owner "$PG_BIN/initdb" -D "$datadir" -U postgres --auth=scram-sha-256 \
      --pwfile="$base/initdb.pw" --encoding=UTF8 --locale=C.UTF-8 >"$base/initdb.log" 2>&1; then
      cat "$base/initdb.log" >&2
      rm -rf "$base"
      exit 1
    fi
    rm -f "$base/initdb.pw" "$base/initdb.log"
    # Fast and small: the data is thrown away.
    cat >>"$datadir/postgresql.conf" <<'EOF'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 200
EOF
    started=""
    for _ in 1 2 3 4 5; do
      port=$(free_port)
      if pg_start "$datadir" "$port"; then
        started=1
        break
      fi
    done
    if [[ -z "$started" ]]; then
      echo "pg-test-cluster: the server did not start; its log:" >&2
      cat "$datadir/server.log" >&2 || true
      exit 1
    fi
    (umask 077 && printf '%s' "$password" >"$info/password")
    echo "$datadir" >"$info/datadir"
    echo "$port" >"$info/port"
    conninfo="host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable"
    echo "$conninfo" >"$info/conninfo"
    echo "$conninfo"
    ;;
  stop)
    stop_server
    datadir=$(cat "$info/datadir" 2>/dev/null || true)
    if [[ -n "$datadir" ]]; then rm -rf "$(dirname "$datadir")"; fi
    rm -f "$info/conninfo" "$info/password" "$info/datadir" "$info/port"
    ;;
  pause)
    stop_server
    ;;
  resume)
    pg_start "$(cat "$info/datadir")" "$(cat "$info/port")"
    ;;
  *)
    echo "usage: $0 start|stop|pause|resume INFO_DIR" >&2
    exit 2
    ;;
esac
