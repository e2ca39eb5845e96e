#!/usr/bin/env bash
# PostgreSQL for the dynamic-secrets suites (OpenBao's database secrets engine, issue 21), from
# Debian's own packages: `apt-get download` + `dpkg -x` into the cache, never installed on the host,
# plus a data directory made once by initdb that each world copies (ADR 0261):
#
#   $SECRET_BINDER_CACHE/postgresql/<version>/root/usr/lib/postgresql/<major>/bin/{postgres,initdb}
#   $SECRET_BINDER_CACHE/postgresql/<version>/root/usr/lib/x86_64-linux-gnu/  (libraries it links)
#   $SECRET_BINDER_CACHE/postgresql/<version>/initdb/                        (template data dir)
#
# The server runs as the unprivileged user `nobody` (PostgreSQL refuses root); the template is owned
# by it. Idempotent: a warm run only stats two files.
set -euo pipefail
source "$(dirname "$0")/env.sh"

major="$SECRET_BINDER_POSTGRES_MAJOR"
version="$SECRET_BINDER_POSTGRES_VERSION"
dest="$SECRET_BINDER_CACHE/postgresql/$version"
if [ -x "$dest/root/usr/lib/postgresql/$major/bin/postgres" ] && [ -f "$dest/initdb/PG_VERSION" ]; then exit 0; fi

log() { printf '[postgres] %s\n' "$*" >&2; }
# The server and the libraries it links that a slim Debian image may lack (ldd of postgres/initdb).
packages=("postgresql-$major=$version" libpq5 libicu72 libxml2 libldap-2.5-0 libsasl2-2 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 liblz4-1 libzstd1)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
log "downloading ${packages[*]}"
download() { (cd "$work" && apt-get download -qq "${packages[@]}" >/dev/null 2>"$work/apt.log"); }
# A machine whose package lists are older than the pinned version: refresh them once and retry.
if ! download; then
  sudo=(); [ "$(id -u)" != 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2 || true
  download || { log "apt-get download failed:"; cat "$work/apt.log" >&2; exit 1; }
fi
mkdir -p "$work/root"
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
bin="$work/root/usr/lib/postgresql/$major/bin"
export LD_LIBRARY_PATH="$work/root/usr/lib/x86_64-linux-gnu"
# initdb as nobody, in a directory nobody owns; share/ (the catalog templates) from the same tree.
mkdir -p "$work/initdb"
chown nobody "$work/initdb"
chmod 700 "$work/initdb"
setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env \
  env LD_LIBRARY_PATH="$LD_LIBRARY_PATH" "$bin/initdb" -D "$work/initdb" -U postgres --auth=trust \
  -L "$work/root/usr/share/postgresql/$major" --no-sync --no-instructions -E UTF8 --locale=C >"$work/initdb.log" 2>&1 || {
  log "initdb failed:"; cat "$work/initdb.log" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
mv "$work/root" "$work/initdb" "$dest.tmp/"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
log "PostgreSQL $version cached in $dest"
