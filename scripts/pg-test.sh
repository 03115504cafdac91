#!/usr/bin/env bash
# `cargo pgrx test`: the #[pg_test]s of src/pg_tests.rs on pgrx's own test cluster, with pg_nango preloaded.
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` OS user in a data directory
# it owns. cargo pgrx test installs its build (with the test functions) into PostgreSQL's directories, as
# `make install` does: as another user, those directories must be writable.
set -euo pipefail
cd "$(dirname "$0")/.."
args=(pg15 --release)
if [ "$(id -u)" = 0 ]; then
    pgdata=${PG_NANGO_PGTEST_DATA:-/tmp/pg_nango_pgtest}
    mkdir -p "$pgdata"
    chown postgres "$pgdata"
    args+=(--runas postgres --pgdata "$pgdata")
fi
exec cargo pgrx test "${args[@]}"
