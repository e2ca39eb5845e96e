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
# Lowkey Vault is optional: where Maven Central does not serve the artifact, this script says so in
# one calm line, once (a failed probe is remembered for a day, and the warm runs of that day stay
# silent), and exits 0; the Azure Key Vault tests then run against the Key Vault double (ADR 0070).
# Maven's own output goes to <cache>/lowkey-vault/<version>.unavailable, never to the terminal.
# Delete that file to probe again now.
set -euo pipefail
source "$(dirname "$0")/env.sh"

version="$SECRET_BINDER_LOWKEY_VERSION"
dest="$SECRET_BINDER_CACHE/lowkey-vault/$version"
if [ -f "$dest/lowkey-vault-app.jar" ] && [ -f "$dest/bundled-cert.pem" ]; then exit 0; fi

log() { printf '[lowkey-vault] %s\n' "$*" >&2; }
artifact="com.github.nagyesta.lowkey-vault:lowkey-vault-app:$version:jar"
# A failed probe is remembered for a day: the note was given when it failed.
unavailable="$dest.unavailable"
if [ -f "$unavailable" ] && [ -n "$(find "$unavailable" -mmin -1440 2>/dev/null)" ]; then exit 0; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && mvn -B -q -U -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
  "-Dartifact=$artifact" "-DoutputDirectory=$work/out" -Dmdep.stripVersion=true >"$work/mvn.log" 2>&1); then
  mkdir -p "$(dirname "$unavailable")"
  # Maven's first error line, then its whole output, for whoever wants the details.
  { sed 's/\x1b\[[0-9;]*m//g' "$work/mvn.log" | grep -m1 -E 'ERROR|Could not' || echo 'mvn failed'; echo; sed 's/\x1b\[[0-9;]*m//g' "$work/mvn.log"; } >"$unavailable"
  log "note: Lowkey Vault $version (optional) is not available from Maven Central here; Azure Key Vault tests use the Key Vault double (ADR 0070). Details: $unavailable"
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
