#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, from Debian's postgresql package: initdb into
# DIR, listening on 127.0.0.1 only (a free port; its Unix socket in DIR), trust authentication
# for the local user `fhirstone`, database `fhirstone`; the URL is written to DIR/url.
# `stop` shuts it down and removes DIR.
# Run as root, the server runs as the `postgres` system user (initdb refuses root).
# Usage: postgres.sh start DIR | stop DIR
set -euo pipefail
cmd=$1 dir=$2
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bindir/initdb" ] || { echo "postgres.sh: PostgreSQL is not installed (apt-get install postgresql)"; exit 1; }
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
  start)
    # Tests need no durability; benchmarks (PG_DURABLE=1) keep PostgreSQL's defaults for it.
    settings="-c max_connections=200 -c fsync=off -c full_page_writes=off"
    [ "${PG_DURABLE:-0}" = 1 ] && settings="-c max_connections=200 -c shared_buffers=1GB -c synchronous_commit=on"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if [ -f "$dir/data/postmaster.pid" ]; then as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U fhirstone --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log"; exit 1; }
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir $settings" start >/dev/null ||
      { cat "$dir/server.log"; exit 1; }
    as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U fhirstone fhirstone
    echo "postgres://fhirstone@127.0.0.1:$port/fhirstone" >"$dir/url"
    echo "postgres.sh: postgres://fhirstone@127.0.0.1:$port/fhirstone ready"
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; fi
    rm -rf "$dir"
    echo "postgres.sh: stopped"
    ;;
  *) echo "usage: postgres.sh start DIR | stop DIR"; exit 2 ;;
esac
