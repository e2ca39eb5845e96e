#!/usr/bin/env bash
# Builds the peers the scale bench compares against (ADR 0270), from their Go modules through the
# Go module proxy, into the cache keyed by version. Bench only: nothing in .ci/run calls this.
#   External Secrets Operator: github.com/external-secrets/external-secrets (its go.mod has replace
#   directives, so `go install mod@version` refuses it: the module is downloaded with
#   `go mod download -json` and built inside a writable copy of it).
# Usage: peers.sh [eso]   (prints the binary's directory on stdout)
set -euo pipefail

ESO_VERSION="${SECRET_BINDER_ESO_VERSION:-v0.16.2}"
CACHE="${SECRET_BINDER_CACHE:-$HOME/.cache/secret-binder}"

export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" CGO_ENABLED=0 GOFLAGS=-mod=mod
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$CACHE/go/mod}" GOCACHE="${GOCACHE_OVERRIDE:-$CACHE/go/build}"

log() { printf '[peers] %s\n' "$*" >&2; }

# build_module <name> <module> <version> <package-dir-in-module>: <cache>/<name>/<version>/{bin/<name>,src}
build_module() {
  local name="$1" module="$2" version="$3" package="$4"
  local out="$CACHE/$name/$version"
  if [ -x "$out/bin/$name" ]; then log "$name $version cached in $out/bin"; echo "$out"; return; fi
  log "downloading $module@$version"
  local dir
  dir="$(cd "$(mktemp -d)" && go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then log "go mod download gave no directory for $module@$version"; exit 1; fi
  rm -rf "$out.tmp" && mkdir -p "$out.tmp/bin"
  cp -r "$dir" "$out.tmp/src" && chmod -R u+w "$out.tmp/src"
  log "building $name $version (this takes minutes)"
  (cd "$out.tmp/src" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/bin/$name" "$package")
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "$name $version ready in $out/bin"
  echo "$out"
}

case "${1:-eso}" in
  eso) build_module external-secrets github.com/external-secrets/external-secrets "$ESO_VERSION" . ;;
  *) log "unknown peer: $1"; exit 2 ;;
esac
