#!/usr/bin/env bash
# Vendors Swagger UI into static/docs/vendor/, from npm's `swagger-ui-dist` at one pinned
# version whose tarball must match the integrity hash the registry published for it. The
# files are committed, so that building and running the server needs no network and no
# npm; this script is only for a deliberate upgrade (change VERSION and INTEGRITY, run it,
# look at /docs, commit). Only what the page loads is kept: the bundle and its stylesheet
# (no source maps, no standalone preset), with the licence and notice they ship under.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=5.35.0
# `npm view swagger-ui-dist@$VERSION dist.integrity`
INTEGRITY=sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==
FILES=(swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE)
dest=static/docs/vendor

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tarball="$tmp/swagger-ui-dist-$VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$INTEGRITY" ]; then
    echo "swagger-ui-dist $VERSION: integrity $actual, expected $INTEGRITY" >&2
    exit 1
fi
tar -xzf "$tarball" -C "$tmp" "${FILES[@]/#/package/}"
mkdir -p "$dest"
for file in "${FILES[@]}"; do
    cp "$tmp/package/$file" "$dest/$file"
done
# What was vendored, for the test that checks the committed files are npm's, unaltered.
{
    echo "# swagger-ui-dist $VERSION ($INTEGRITY), by scripts/vendor-swagger-ui.sh"
    (cd "$dest" && sha256sum "${FILES[@]}")
} > "$dest/SHA256SUMS"
echo "vendored swagger-ui-dist $VERSION into $dest" >&2
