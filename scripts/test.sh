#!/usr/bin/env bash
# Runs every test of chunkstream on a fresh Debian machine: installs what the tests need
# when it is missing, then runs the whole suite. The README's test command; `.ci/run` calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need (a browser download at test time is not possible here;
# Debian's packages are):
# - chromium + chromium-driver: the live page's browser tests (tests/api/browser.rs) drive
#   headless Chromium through ChromeDriver;
# - nginx: the scale-out test (tests/api/scaleout.rs) and the browser tests of the edge
#   (tests/api/browser/edge.rs, prefix.rs) run instances behind nginx;
# - openssl: those tests make a self-signed certificate for deploy/nginx.conf's HTTPS listener;
# - npm: fetches axe-core, the accessibility checker the browser tests run in the page;
# - python3-venv: the venvs of the OpenAPI tools and of python websockets (below).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} for the tests" >&2
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    # Install without starting nginx's system service: the tests run their own nginx.
    $sudo_ env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# axe-core from npm, one pinned version (npm checks the registry's integrity hash), into
# target/ (tests/api/browser/a11y.rs reads it there): nothing of it is committed.
AXE_CORE_VERSION=4.14.1
axe_dir="${CARGO_TARGET_DIR:-target}/axe-core"
if ! grep -qs "\"version\": \"$AXE_CORE_VERSION\"" "$axe_dir/node_modules/axe-core/package.json"; then
    echo "installing axe-core $AXE_CORE_VERSION for the tests" >&2
    npm install --silent --prefix "$axe_dir" --no-save --no-package-lock --no-audit --no-fund \
        "axe-core@$AXE_CORE_VERSION" >/dev/null
fi

# openapi-spec-validator and Schemathesis from PyPI, pinned, in a venv in target/
# (tests/api/spec.rs validates the OpenAPI 3.2 document with them, and checks streamed items
# against its itemSchema with the jsonschema they bring): nothing of them is committed.
SPEC_TOOLS="openapi-spec-validator==0.9.0 schemathesis==4.32.5"
tools_dir="${CARGO_TARGET_DIR:-target}/spec-tools"
if [ "$(cat "$tools_dir/requirements" 2>/dev/null)" != "$SPEC_TOOLS" ]; then
    echo "installing $SPEC_TOOLS for the tests" >&2
    rm -rf "$tools_dir"
    python3 -m venv "$tools_dir"
    # shellcheck disable=SC2086 # one word per requirement
    "$tools_dir/bin/pip" install --quiet --disable-pip-version-check --no-input $SPEC_TOOLS
    echo "$SPEC_TOOLS" > "$tools_dir/requirements"
fi

# python websockets from PyPI, pinned, in a venv in target/: the interop test of WebSocket
# compression (tests/api/ws_deflate.rs drives tests/api/ws_deflate.py with it). Nothing of it
# is committed.
WEBSOCKETS_VERSION=17.4
websockets_venv="${CARGO_TARGET_DIR:-target}/python-websockets"
if ! "$websockets_venv/bin/python" -c \
    "import sys, websockets; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null; then
    echo "installing python websockets $WEBSOCKETS_VERSION for the tests" >&2
    rm -rf "$websockets_venv"
    python3 -m venv "$websockets_venv"
    "$websockets_venv/bin/pip" install --quiet --disable-pip-version-check \
        "websockets==$WEBSOCKETS_VERSION"
fi

# CI=1: the tests that need Chromium, nginx, openssl, axe-core, the OpenAPI tools or python
# websockets fail rather than skip if they cannot run.
CI=1 cargo test --locked --workspace --all-targets
