#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL 15 cluster with pg_nango preloaded, listening on 127.0.0.1 and on a
# socket in its data directory. PostgreSQL refuses to run as root, so as root the cluster runs as the
# `postgres` OS user (created by Debian's package). PG_NANGO_PRELOAD=no leaves shared_preload_libraries alone.
# The server runs with RUST_BACKTRACE=1, as a developer's shell often has it: no error may carry a Rust
# backtrace to the client all the same.
#   scripts/cluster.sh start DATADIR PORT [setting=value ...]
#   scripts/cluster.sh stop DATADIR
#   scripts/cluster.sh crash-restart DATADIR     (immediate stop, as a power loss, then start: crash recovery)
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
cmd=${1:?usage: cluster.sh start|stop|crash-restart DATADIR [PORT]}
datadir=$(realpath -m "${2:?DATADIR missing}")

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && sudo -u postgres "$@")
    else
        "$@"
    fi
}

case "$cmd" in
start)
    port=${3:?PORT missing}
    shift 3
    if [ -f "$datadir/postmaster.pid" ]; then
        as_owner "$BIN/pg_ctl" -D "$datadir" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$datadir"
    mkdir -p "$datadir"
    [ "$(id -u)" = 0 ] && chown postgres "$datadir"
    as_owner "$BIN/initdb" -D "$datadir" -U postgres --auth=trust --no-sync >"$datadir.initdb.log" 2>&1 ||
        { cat "$datadir.initdb.log"; exit 1; }
    {
        [ "${PG_NANGO_PRELOAD:-yes}" = no ] || echo "shared_preload_libraries = 'pg_nango'"
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$datadir'"
        echo "max_worker_processes = 32"
        echo "fsync = off"
        echo "timezone = 'UTC'"
        for setting in "$@"; do echo "$setting"; done
    } >>"$datadir/postgresql.conf"
    as_owner env RUST_BACKTRACE=1 "$BIN/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 start >/dev/null
    ;;
stop)
    if [ -f "$datadir/postmaster.pid" ]; then
        as_owner "$BIN/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null
    fi
    ;;
crash-restart)
    as_owner "$BIN/pg_ctl" -D "$datadir" -m immediate -w stop >/dev/null
    as_owner env RUST_BACKTRACE=1 "$BIN/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 start >/dev/null
    ;;
*)
    echo "usage: cluster.sh start DATADIR PORT [setting=value ...] | stop DATADIR | crash-restart DATADIR" >&2
    exit 2
    ;;
esac
