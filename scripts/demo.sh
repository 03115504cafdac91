#!/usr/bin/env bash
# The pg_nango demo: a local cluster with the extension preloaded, the bundled mock API, the
# nango-integrations/ folder deployed, a connection, one sync run, its records and the notification a
# LISTEN session received. `scripts/demo.sh --stop DIR` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--stop" ]; then
    dir=${2:?}
    [ -f "$dir/mock-api.pid" ] && kill "$(cat "$dir/mock-api.pid")" 2>/dev/null || true
    scripts/cluster.sh stop "$dir/pgdata"
    echo "demo stopped"
    exit 0
fi
dir=${1:?usage: demo.sh DIR}
PORT=${PG_NANGO_DEMO_PORT:-55432}
API_PORT=${PG_NANGO_DEMO_API_PORT:-8787}
mkdir -p "$dir"
[ -f "$dir/mock-api.pid" ] && kill "$(cat "$dir/mock-api.pid")" 2>/dev/null || true

echo "==> starting PostgreSQL 15 with pg_nango preloaded on 127.0.0.1:$PORT"
# The demo provider takes its base URL from the connection, so the mock API's host must be allowed.
scripts/cluster.sh start "$dir/pgdata" "$PORT" "nango.allowed_hosts = '127.0.0.1'"
echo "==> starting the mock API on 127.0.0.1:$API_PORT"
target/release/nango-mock-api --port "$API_PORT" >"$dir/mock-api.log" 2>&1 &
echo $! >"$dir/mock-api.pid"
sleep 0.5

# The demo deploys from a path the server reads; a copy in the data directory's parent is readable by it.
rm -rf "$dir/nango-integrations" "$dir/zero-yaml" && cp -r nango-integrations "$dir/nango-integrations"
cp -r examples/zero-yaml "$dir/zero-yaml"
[ "$(id -u)" = 0 ] && chmod -R a+rX "$dir"

PSQL=(psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
"${PSQL[@]}" <<SQL
\echo '==> CREATE EXTENSION pg_nango'
CREATE EXTENSION pg_nango;
\echo '==> nango.deploy(''nango-integrations'')'
SELECT jsonb_pretty(nango.deploy('$dir/nango-integrations')) AS deploy_summary;
SQL

echo "==> a LISTEN nango session creates the connection, which starts the sync, and waits for its job"
"${PSQL[@]}" <<SQL
LISTEN nango;
SELECT nango.create_connection('demo', 'acme', jsonb_build_object('type', 'API_KEY', 'apiKey', 'demo-key'),
                               jsonb_build_object('base_url', 'http://127.0.0.1:$API_PORT'));
-- The new connection's first run starts at once; trigger_sync returns that job (or queues it).
SELECT nango.trigger_sync('demo', 'tickets', 'acme') AS job \gset
\echo '==> waiting for the job; psql prints the notification it receives on channel nango right after'
SELECT nango.wait_for_job(:job) AS job_status;
\echo '==> the job'
SELECT id, sync_name, type, status, result, ended_at - started_at AS took FROM nango.jobs WHERE connection_id = 'acme';
\echo '==> nango.records(''Ticket'') (first 5 of them)'
SELECT id, data ->> 'subject' AS subject, data ->> 'status' AS status, _nango_metadata ->> 'last_action' AS last_action, cursor
FROM nango.records('Ticket', connection_id => 'acme', "limit" => 5);
\echo '==> the typed view nango_records.ticket'
SELECT id, subject, status, priority, created_at, _nango_last_action FROM nango_records.ticket ORDER BY _nango_cursor::bigint LIMIT 3;
\echo '==> an action through the same proxy: nango.trigger_action(''demo'', ''acme'', ''create-ticket'', …)'
SELECT nango.trigger_action('demo', 'acme', 'create-ticket',
    '{"subject": "Printer on fire", "requester_name": "Ada", "requester_email": "ada@example.com"}') AS created;
\echo '==> nango.sync_status'
SELECT integration, sync, connection_id, status, frequency, last_sync_date, next_run_at, record_counts FROM nango.sync_status;
SQL

echo "==> the same project in Nango's current zero-YAML format (examples/zero-yaml: index.ts, createSync, zod models)"
"${PSQL[@]}" <<SQL
SELECT jsonb_pretty(nango.deploy('$dir/zero-yaml') - 'views') AS deploy_summary;
\echo '==> its sync runs over the records the yaml version saved: only the ticket the action created is new'
SELECT nango.trigger_sync('demo', 'tickets', 'acme') AS job \gset
SELECT nango.wait_for_job(:job) AS job_status;
SELECT id, status, result FROM nango.jobs WHERE id = :job;
\echo '==> its action checks the input with the zod schema it declares'
SELECT nango.trigger_action('demo', 'acme', 'create-ticket',
    '{"subject": "Printer on fire again", "requester_name": "Ada", "requester_email": "ada@example.com"}') ->> 'id' AS created_id;
SQL
echo "==> the same from a laptop, with the pg-nango client (connection from libpq's PGHOST, PGPORT, …)"
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
client() { echo "\$ pg-nango $*"; pg-nango "$@"; }
client deploy "$dir/nango-integrations" --plan
client deploy "$dir/nango-integrations"
echo "\$ pg-nango dryrun demo tickets acme --validate   # (first and last line)"
pg-nango dryrun demo tickets acme --validate | sed -n '1p;$p'
client trigger demo tickets acme --wait
client status
client records Ticket --connection acme --limit 3
client logs --limit 5

cat <<EOF

The demo is running:
  psql -h 127.0.0.1 -p $PORT -U postgres        # then e.g. SELECT * FROM nango.sync_status;
  PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres pg-nango logs --follow
  make demo-stop                                   # stops PostgreSQL and the mock API
EOF
