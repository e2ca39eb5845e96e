#!/usr/bin/env bash
# Builds the Go tools the checks run — helm-docs (the chart README, ADR 0232) and actionlint (the
# release workflow, ADR 0234) — from their official Go modules through the Go module proxy into the
# cache, keyed by version. Neither go.mod has replace directives, so `go install mod@version` works.
set -euo pipefail

HELM_DOCS_VERSION="${SECRET_BINDER_HELM_DOCS_VERSION:-v1.14.2}"
ACTIONLINT_VERSION="${SECRET_BINDER_ACTIONLINT_VERSION:-v1.7.12}"
CACHE="${SECRET_BINDER_CACHE:-$HOME/.cache/secret-binder}"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$CACHE/go/mod}" GOCACHE="${GOCACHE_OVERRIDE:-$CACHE/go/build}"

log() { printf '[go-tools] %s\n' "$*" >&2; }

# build <name> <version> <package> [ldflags]
build() {
  local name="$1" version="$2" package="$3" ldflags="${4:-}"
  local out="$CACHE/$name/$version/bin"
  if [ -x "$out/$name" ]; then log "$name $version cached in $out"; return; fi
  log "building $name $version"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w $ldflags" "$package@$version"
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "$name $version ready in $out"
}

build helm-docs "$HELM_DOCS_VERSION" github.com/norwoodj/helm-docs/cmd/helm-docs "-X main.version=${HELM_DOCS_VERSION#v}"
build actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint/cmd/actionlint "-X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION"
