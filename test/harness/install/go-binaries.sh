#!/usr/bin/env bash
# Builds the control-plane and node binaries the test world needs, from the official Go modules
# through the Go module proxy, into a cache outside the work tree keyed by version.
#
#   k8s.io/kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl,
#                       kube-proxy (the real node's Service networking, ADR 0180)
#   go.etcd.io/etcd:    etcd (server) and etcdctl
#   github.com/coredns/coredns: a CoreDNS with only the plugins the node's cluster DNS uses
#                       (ADR 0181), from a small main package of our own importing them
#   github.com/kubernetes-csi/csi-test/v5: csi-sanity (the CSI conformance runner, ADR 0166)
#
# `go install mod@version` refuses modules whose go.mod has replace directives, so each build uses a
# throwaway wrapper module that requires the release and replaces every local-path replacement
# with its published version (derived from the published go.mod, never hard-coded).
set -euo pipefail

K8S_VERSION="${SECRET_BINDER_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${SECRET_BINDER_ETCD_VERSION:-v3.5.35}"
COREDNS_VERSION="${SECRET_BINDER_COREDNS_VERSION:-v1.14.7}"
CSI_TEST_VERSION="${SECRET_BINDER_CSI_TEST_VERSION:-v5.6.0}"
CACHE="${SECRET_BINDER_CACHE:-$HOME/.cache/secret-binder}"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
# Keep the Go module and build caches beside the binaries, so everything the harness needs lives
# in one cache a fresh clone reuses.
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$CACHE/go/mod}" GOCACHE="${GOCACHE_OVERRIDE:-$CACHE/go/build}"

log() { printf '[go-binaries] %s\n' "$*" >&2; }

# wrapper_module DIR MODULE VERSION STAGING_VERSION: writes DIR/go.mod requiring MODULE@VERSION and
# replacing each of its `=> ./local/path` replacements with the published module: at the version
# the release's go.mod requires, or at STAGING_VERSION where it requires the placeholder v0.0.0
# (Kubernetes' staging modules). Replacements of modules the release does not require (etcd's
# FORBIDDEN_DEPENDENCY guards) are left out.
wrapper_module() {
  local dir="$1" module="$2" version="$3" staging_version="$4"
  local gomod
  gomod="$(cd "$dir" && go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [ -f "$gomod" ] || { log "could not download the go.mod of $module@$version"; return 1; }
  {
    printf 'module secretbinder.dev/harness-build\n\ngo 1.24\n\nrequire %s %s\n\nreplace (\n' "$module" "$version"
    awk -v staging="$staging_version" '
      # require lines: "\tmod vX" inside a block, or "require mod vX".
      $1 == "require" && NF >= 3 && $3 ~ /^v/ { required[$2] = $3 }
      $1 != "require" && NF >= 2 && $2 ~ /^v[0-9]/ && $0 !~ /=>/ { required[$1] = $2 }
      $2 == "=>" && $3 ~ /^\.\.?\// { local[$1] = 1 }
      END {
        for (m in local) {
          if (!(m in required)) continue
          v = required[m]; if (v == "v0.0.0") v = staging
          printf "\t%s => %s %s\n", m, m, v
        }
      }' "$gomod" | sort
    printf ')\n'
  } >"$dir/go.mod"
}

build_kubernetes() {
  local out="$CACHE/kubernetes/$K8S_VERSION/bin"
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy)
  # Only what is missing: a binary added to the list later is built alone, on the warm build cache.
  local missing=()
  for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
  if [ "${#missing[@]}" = 0 ]; then log "kubernetes $K8S_VERSION cached in $out"; return 0; fi

  local work; work="$(mktemp -d)"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  log "building kubernetes $K8S_VERSION (${missing[*]}) in $work"
  wrapper_module "$work" k8s.io/kubernetes "$K8S_VERSION" "v0.${K8S_VERSION#v1.}"
  local pkg="k8s.io/component-base/version"
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  mkdir -p "$out" "$work/bin"
  local targets=()
  for b in "${missing[@]}"; do targets+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$work" && go mod tidy -e >/dev/null 2>&1 || true
   cd "$work" && go get "${targets[@]/%/@$K8S_VERSION}" >/dev/null 2>&1 || true
   for t in "${targets[@]}"; do
     log "  go build $t"
     go build -trimpath -ldflags "$ldflags" -o "$work/bin/" "$t"
   done)
  # Each binary moves into place whole (a rename in one file system), so a cache never holds half a
  # binary; `-x` above is the only "built" test.
  for b in "${missing[@]}"; do mv "$work/bin/$b" "$out/$b.tmp" && mv "$out/$b.tmp" "$out/$b"; done
  rm -rf "$work"
  log "kubernetes $K8S_VERSION ready in $out"
}

build_etcd() {
  local out="$CACHE/etcd/$ETCD_VERSION/bin"
  if [ -x "$out/etcd" ] && [ -x "$out/etcdctl" ]; then log "etcd $ETCD_VERSION cached in $out"; return 0; fi
  local work; work="$(mktemp -d)"
  log "building etcd $ETCD_VERSION in $work"
  wrapper_module "$work" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION"
  # etcdctl is its own module with the same kind of replacements.
  local ctl; ctl="$(mktemp -d)"
  wrapper_module "$ctl" go.etcd.io/etcd/etcdctl/v3 "$ETCD_VERSION" "$ETCD_VERSION"
  local ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
  mkdir -p "$out.tmp"
  (cd "$work" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 || true
   go build -trimpath -ldflags "$ldflags" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3)
  (cd "$ctl" && go get "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION" >/dev/null 2>&1 || true
   go build -trimpath -ldflags "$ldflags" -o "$out.tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3)
  rm -rf "$out" && mv "$out.tmp" "$out"
  rm -rf "$work" "$ctl"
  log "etcd $ETCD_VERSION ready in $out"
}

# The plugins of the cluster DNS (ADR 0181), in the order CoreDNS runs them (its own directive order).
# No `forward`: a name outside cluster.local gets an error, and nothing asks a resolver off the host.
COREDNS_PLUGINS=(bind ready health errors log cache kubernetes)

build_coredns() {
  local out="$CACHE/coredns/$COREDNS_VERSION/bin"
  local stamp="plugins: ${COREDNS_PLUGINS[*]}"
  if [ -x "$out/coredns" ] && [ "$(cat "$out/plugins" 2>/dev/null)" = "$stamp" ]; then log "coredns $COREDNS_VERSION cached in $out"; return 0; fi
  local work; work="$(mktemp -d)"
  log "building coredns $COREDNS_VERSION (${COREDNS_PLUGINS[*]}) in $work"
  {
    printf '// CoreDNS with only the plugins the test world'"'"'s cluster DNS uses (ADR 0181).\npackage main\n\nimport (\n'
    printf '\t"github.com/coredns/coredns/core/dnsserver"\n\t"github.com/coredns/coredns/coremain"\n\n'
    for p in "${COREDNS_PLUGINS[@]}"; do printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$p"; done
    printf ')\n\nfunc init() {\n\tdnsserver.Directives = []string{'
    printf '"%s", ' "${COREDNS_PLUGINS[@]}"
    printf '}\n}\n\nfunc main() { coremain.Run() }\n'
  } >"$work/main.go"
  printf 'module secretbinder.dev/harness-coredns\n\ngo 1.24\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" >"$work/go.mod"
  mkdir -p "$out"
  (cd "$work" && gofmt -w main.go && go mod tidy >&2 &&
   go build -trimpath -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o "$work/coredns" .)
  mv "$work/coredns" "$out/coredns.tmp" && mv "$out/coredns.tmp" "$out/coredns"
  echo "$stamp" >"$out/plugins"
  rm -rf "$work"
  log "coredns $COREDNS_VERSION ready in $out"
}

build_csi_sanity() {
  local out="$CACHE/csi-test/$CSI_TEST_VERSION/bin"
  if [ -x "$out/csi-sanity" ]; then log "csi-sanity $CSI_TEST_VERSION cached in $out"; return 0; fi
  log "building csi-sanity $CSI_TEST_VERSION"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  # csi-test's go.mod has no local replacements: a plain `go install module@version` builds it.
  GOFLAGS= GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w -X main.VERSION=$CSI_TEST_VERSION" \
    "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_TEST_VERSION"
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "csi-sanity $CSI_TEST_VERSION ready in $out"
}

case "${1:-all}" in
  etcd) build_etcd ;;
  kubernetes) build_kubernetes ;;
  coredns) build_coredns ;;
  csi-sanity) build_csi_sanity ;;
  all) build_etcd; build_kubernetes; build_coredns; build_csi_sanity ;;
  *) echo "usage: $0 [all|etcd|kubernetes|coredns|csi-sanity]" >&2; exit 2 ;;
esac
