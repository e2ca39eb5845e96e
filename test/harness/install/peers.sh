#!/usr/bin/env bash
# Builds the peers the scale bench compares against (ADR 0270), from their Go modules through the
# Go module proxy, into the cache keyed by version. Bench only: nothing in .ci/run calls this.
#   External Secrets Operator: github.com/external-secrets/external-secrets (its go.mod has replace
#   directives, so `go install mod@version` refuses it: the module is downloaded with
#   `go mod download -json` and built inside a writable copy of it).
#   Secrets Store CSI driver + HashiCorp's Vault provider: `csi-check` asks the proxy whether both
#   modules are served at their versions and prints the proxy's answer; the bench's row quotes it.
# Usage: peers.sh [eso|csi-check]   (eso: prints the built module's directory on stdout)
set -euo pipefail

ESO_VERSION="${SECRET_BINDER_ESO_VERSION:-v0.16.2}"
CSI_DRIVER_VERSION="${SECRET_BINDER_CSI_DRIVER_VERSION:-v1.5.4}"
VAULT_CSI_PROVIDER_VERSION="${SECRET_BINDER_VAULT_CSI_PROVIDER_VERSION:-v1.7.0}"
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
  csi-check)
    tmp="$(mktemp -d)"
    status=0
    for module in "sigs.k8s.io/secrets-store-csi-driver@$CSI_DRIVER_VERSION" "github.com/hashicorp/vault-csi-provider@$VAULT_CSI_PROVIDER_VERSION"; do
      if (cd "$tmp" && go list -m -json "$module" >/dev/null 2>"$tmp/err"); then echo "$module: served"; else echo "$module: $(tr '\n' ' ' <"$tmp/err")"; status=1; fi
    done
    rm -rf "$tmp"
    exit "$status" ;;
  *) log "unknown peer: $1"; exit 2 ;;
esac
