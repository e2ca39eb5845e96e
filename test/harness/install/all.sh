#!/usr/bin/env bash
# Installs everything the tests need, reusing the cache: seconds when warm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
for step in node apt go-binaries helm go-tools python-tools lowkey-vault postgres; do
  if [ -f "$here/$step.sh" ]; then bash "$here/$step.sh"; fi
done
