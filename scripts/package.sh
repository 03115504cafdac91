#!/usr/bin/env bash
# Builds the Debian package of the extension, postgresql-15-pg-nango_<version>_<arch>.deb in target/, from
# `cargo pgrx package` (the library, the control file, this version's install script and the upgrade scripts)
# plus the earlier releases' install scripts (sql/releases/).
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
name=postgresql-15-pg-nango
stage=target/deb/${name}_${version}_${arch}
deb=target/${name}_${version}_${arch}.deb

cargo pgrx package --pg-config "$PG_CONFIG"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"
cp -a target/release/pg_nango-pg15/usr "$stage/"
install -m 0644 sql/releases/*.sql "$stage$("$PG_CONFIG" --sharedir)/extension/"
install -m 0644 -D README.md "$stage/usr/share/doc/$name/README.md"
strip --strip-unneeded "$stage$("$PG_CONFIG" --pkglibdir)/pg_nango.so"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: pg_nango developers <pg_nango@localhost>
Depends: postgresql-15, libc6 (>= 2.36), libgcc-s1
Section: database
Priority: optional
Installed-Size: $(du -sk "$stage/usr" | cut -f1)
Description: Nango-style API syncs inside PostgreSQL 15
 pg_nango runs Nango integration scripts (nango.yaml or zero-YAML index.ts) in
 background workers of the database: records land in tables with their
 _nango_metadata, and each run is announced with NOTIFY. Add pg_nango to
 shared_preload_libraries, restart PostgreSQL, then CREATE EXTENSION pg_nango.
CONTROL
cat >"$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    echo "pg_nango: add pg_nango to shared_preload_libraries, restart PostgreSQL, then CREATE EXTENSION pg_nango;"
    echo "          a database at an earlier version is brought up with ALTER EXTENSION pg_nango UPDATE."
fi
POSTINST
chmod 0755 "$stage/DEBIAN/postinst"
dpkg-deb --build --root-owner-group "$stage" "$deb" >/dev/null
echo "$deb"
