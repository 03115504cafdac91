#!/usr/bin/env bash
# Fetches a package pinned in scripts/npm-packages.lock from the npm registry into
# target/npm/<name>@<version>/ (the tarball's `package/` folder), checking its sha512 first.
# Prints the folder. Skips the download when the folder is already there.
#   scripts/fetch-npm.sh zod
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
name="${1:?usage: fetch-npm.sh <package>}"
read -r version digest < <(awk -v n="$name" '$1 == n { print $2, $3 }' "$root/scripts/npm-packages.lock")
if [ -z "${version:-}" ]; then
    echo "fetch-npm: $name is not pinned in scripts/npm-packages.lock" >&2
    exit 1
fi
dest="$root/target/npm/$name@$version"
if [ -f "$dest/package.json" ]; then
    echo "$dest"
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# A scoped name's tarball is named after its last part: @scope/pkg → pkg-<version>.tgz.
url="https://registry.npmjs.org/$name/-/${name##*/}-$version.tgz"
curl -fsSL --retry 3 -o "$tmp/package.tgz" "$url"
actual="$(sha512sum "$tmp/package.tgz" | cut -d' ' -f1)"
if [ "$actual" != "$digest" ]; then
    echo "fetch-npm: $url has sha512 $actual, expected $digest" >&2
    exit 1
fi
tar -xzf "$tmp/package.tgz" -C "$tmp"
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$tmp/package" "$dest"
echo "$dest"
