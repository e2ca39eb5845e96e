#!/usr/bin/env bash
# Builds Helm from its official Go module through the Go module proxy into the cache, keyed by
# version (the packaging tests lint, template and install the chart with it).
#
# helm.sh/helm/v3's go.mod has no replace directives, so `go install mod@version` works directly;
# should a release add some, build through a wrapper module as go-binaries.sh does.
set -euo pipefail

HELM_VERSION="${SECRET_BINDER_HELM_VERSION:-v3.19.5}"
CACHE="${SECRET_BINDER_CACHE:-$HOME/.cache/secret-binder}"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$CACHE/go/mod}" GOCACHE="${GOCACHE_OVERRIDE:-$CACHE/go/build}"

log() { printf '[helm] %s\n' "$*" >&2; }

out="$CACHE/helm/$HELM_VERSION/bin"
if [ -x "$out/helm" ]; then log "helm $HELM_VERSION cached in $out"; exit 0; fi

log "building helm $HELM_VERSION"
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
# What Helm's Makefile sets: the version `helm version` prints, and the Kubernetes version that
# `helm template` / `helm lint` assume (from the client-go it requires: v0.34.x -> 1.34), without
# which they assume v1.20 and refuse charts with a kubeVersion constraint.
probe="$(mktemp -d)"
gomod="$(cd "$probe" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
rm -rf "$probe"
k8s_minor="$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2] }' "$gomod")"
[ -n "$k8s_minor" ] || { log "cannot read the client-go version of helm $HELM_VERSION"; exit 1; }
pkg="helm.sh/helm/v3/internal/version"
ldflags="-s -w -X $pkg.version=$HELM_VERSION -X $pkg.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
done
GOBIN="$out.tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
rm -rf "$out" && mv "$out.tmp" "$out"
log "helm $HELM_VERSION ready in $out"
