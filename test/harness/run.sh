#!/usr/bin/env bash
# Prepares the project's toolchain on any machine — Node 24, npm packages, the Go-built control
# plane, the backend servers — reusing the cache outside the work tree, then runs a command in it.
# Idempotent; a warm run takes seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$here/install/env.sh"
bash "$here/install/all.sh"
cd "$root"
stamp=node_modules/.secret-binder-install
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node --version)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi
exec "$@"
