#!/usr/bin/env bash
# Fetches Lowkey Vault (an Azure Key Vault test double, a Spring Boot jar) from Maven Central into
# the cache, and extracts the certificate bundled in it so Node clients can verify its TLS:
#
#   $SECRET_BINDER_CACHE/lowkey-vault/<version>/lowkey-vault-app.jar
#   $SECRET_BINDER_CACHE/lowkey-vault/<version>/bundled-cert.pem
#
# The 3.4.x line is the last one that runs on Java 17 (4.x needs Java 21). Idempotent: a warm run
# only stats two files.
#
# If Maven Central does not serve the artifact, this script warns loudly and exits 0, so the rest
# of the toolchain still installs; the tests that need Lowkey Vault then fail with the same hint
# (test/harness/lowkey-vault.ts). Delete <cache>/lowkey-vault/<version>.unavailable to retry now.
set -euo pipefail
source "$(dirname "$0")/env.sh"

version="$SECRET_BINDER_LOWKEY_VERSION"
dest="$SECRET_BINDER_CACHE/lowkey-vault/$version"
if [ -f "$dest/lowkey-vault-app.jar" ] && [ -f "$dest/bundled-cert.pem" ]; then exit 0; fi

log() { printf '[lowkey-vault] %s\n' "$*" >&2; }
artifact="com.github.nagyesta.lowkey-vault:lowkey-vault-app:$version:jar"
# A failed fetch is remembered for a day, so warm runs stay instant where Central lacks it.
unavailable="$dest.unavailable"
if [ -f "$unavailable" ] && [ -n "$(find "$unavailable" -mmin -1440 2>/dev/null)" ]; then
  log "WARNING: $artifact is not available (checked $(date -r "$unavailable" -u +%FT%TZ), see $unavailable); the Azure Key Vault tests run against the Key Vault double instead (ADR 0070)."
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log "fetching $artifact"
if ! (cd "$work" && mvn -B -q -U -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
  "-Dartifact=$artifact" "-DoutputDirectory=$work/out" -Dmdep.stripVersion=true >"$work/mvn.log" 2>&1); then
  log "WARNING: could not fetch $artifact from Maven Central; the Azure Key Vault tests run against the Key Vault double instead (ADR 0070)."
  mkdir -p "$(dirname "$unavailable")"
  sed 's/\x1b\[[0-9;]*m//g' "$work/mvn.log" | grep -m1 -E 'ERROR|Could not' | tee "$unavailable" >&2 || true
  exit 0
fi
jar="$work/out/lowkey-vault-app.jar"

# The serving certificate: cert/keystore.p12 on the app's classpath (password `changeit`, as in
# the app's application.properties). keytool prints every certificate of the store as PEM.
unzip -p "$jar" BOOT-INF/classes/cert/keystore.p12 >"$work/keystore.p12"
keytool -list -rfc -keystore "$work/keystore.p12" -storetype PKCS12 -storepass changeit \
  | sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' >"$work/bundled-cert.pem"
grep -q 'BEGIN CERTIFICATE' "$work/bundled-cert.pem"

mkdir -p "$dest.tmp"
mv "$jar" "$work/bundled-cert.pem" "$dest.tmp/"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
log "installed Lowkey Vault $version in $dest"
