#!/usr/bin/env bash
# Builds the Debian package, installs it with apt as a user would, and checks the installed files on a new
# cluster: CREATE EXTENSION at this version, a deploy of nango-integrations/ and one sync against the mock API,
# and CREATE EXTENSION at the first release followed by ALTER EXTENSION pg_nango UPDATE.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
deb=$(bash scripts/package.sh | tail -1)
# What `make install` put there is removed first, so that the checks below run on the package's files alone.
pkglibdir=$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)
extdir=$(/usr/lib/postgresql/15/bin/pg_config --sharedir)/extension
if ! dpkg-query -W -f='${Status}' postgresql-15-pg-nango 2>/dev/null | grep -q "install ok installed"; then
    $SUDO rm -f "$pkglibdir/pg_nango.so" "$extdir"/pg_nango.control "$extdir"/pg_nango--*.sql
fi
echo "==> apt-get install ./$deb"
$SUDO apt-get install -y --reinstall "./$deb" >/dev/null
dpkg-query -W -f='${Status}\n' postgresql-15-pg-nango | grep -qx "install ok installed"
installed=$(dpkg -L postgresql-15-pg-nango)
for file in /usr/lib/postgresql/15/lib/pg_nango.so \
    /usr/share/postgresql/15/extension/pg_nango.control \
    "/usr/share/postgresql/15/extension/pg_nango--$version.sql" \
    /usr/share/postgresql/15/extension/pg_nango--0.1.0.sql \
    "/usr/share/postgresql/15/extension/pg_nango--0.1.0--$version.sql"; do
    grep -qx "$file" <<<"$installed" || { echo "the package does not install $file"; exit 1; }
done

dir=$(mktemp -d /tmp/pg_nango_package.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
api_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
    [ -n "${mock:-}" ] && kill "$mock" 2>/dev/null || true
    scripts/cluster.sh stop "$dir/pgdata" || true
    rm -rf "$dir"
}
trap cleanup EXIT
cargo build --release -q -p pg_nango_mock_api
target/release/nango-mock-api --port "$api_port" >"$dir/mock-api.log" 2>&1 &
mock=$!
cp -r nango-integrations "$dir/nango-integrations"
[ "$(id -u)" = 0 ] && chmod -R a+rX "$dir"
scripts/cluster.sh start "$dir/pgdata" "$port" "nango.allowed_hosts = '127.0.0.1'"
psql=(psql -X -q -A -t -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1)
"${psql[@]}" -d postgres <<SQL
CREATE EXTENSION pg_nango;
SELECT nango.deploy('$dir/nango-integrations') IS NOT NULL;
SELECT nango.create_connection('demo', 'package', '{"type": "API_KEY", "apiKey": "demo-key"}',
                               jsonb_build_object('base_url', 'http://127.0.0.1:$api_port'));
SQL
job=$("${psql[@]}" -d postgres -c "SELECT nango.trigger_sync('demo', 'tickets', 'package')")
status=$("${psql[@]}" -d postgres -c "SELECT nango.wait_for_job($job, '60 seconds')")
records=$("${psql[@]}" -d postgres -c "SELECT count(*) FROM nango.records('Ticket', connection_id => 'package')")
extversion=$("${psql[@]}" -d postgres -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_nango'")
[ "$status" = SUCCESS ] && [ "$records" -gt 0 ] && [ "$extversion" = "$version" ] ||
    { echo "the packaged extension did not sync: job $job $status, $records records, version $extversion"; exit 1; }
"${psql[@]}" -d postgres -c "CREATE DATABASE earlier"
updated=$("${psql[@]}" -d earlier -c "CREATE EXTENSION pg_nango VERSION '0.1.0'" \
    -c "ALTER EXTENSION pg_nango UPDATE" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_nango'")
[ "$updated" = "$version" ] || { echo "ALTER EXTENSION pg_nango UPDATE left version $updated"; exit 1; }
echo "==> $deb installs with apt; job $job synced $records records; 0.1.0 updates to $updated"
