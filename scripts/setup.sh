#!/usr/bin/env bash
# Installs what building and testing pg_nango needs, skipping whatever is already there:
# Debian's PostgreSQL 15 with its server headers, clang for pgrx's bindgen, sudo (clusters run as
# an unprivileged OS user), curl for the pinned npm packages (scripts/fetch-npm.sh), cargo-pgrx 0.18.1, and `cargo pgrx init` against Debian's pg_config.
set -euo pipefail

PGRX_VERSION=0.18.1
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-client-15 libclang-dev clang sudo pkg-config curl ca-certificates)

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's postgresql-common creates and starts a "main" cluster; pg_nango never uses it.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 *main .*online'; then
    as_root pg_ctlcluster 15 main stop || true
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
    echo "setup: installing cargo-pgrx $PGRX_VERSION (about 10 minutes on 2 cores)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

PGRX_HOME=${PGRX_HOME:-$HOME/.pgrx}
if ! grep -qs "pg15 *= *\"$PG_CONFIG\"" "$PGRX_HOME/config.toml"; then
    echo "setup: cargo pgrx init --pg15 $PG_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi

# The extension goes into PostgreSQL's root-owned library and extension directories. They keep their
# permissions: a directory others can write would let any local user plant a library the server loads.
# `make install` copies the files there with root rights (`cargo pgrx install --sudo` when not root).
echo "setup: ok"
