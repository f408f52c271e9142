#!/usr/bin/env bash
# Runs every test of chunkstream on a fresh Debian machine: installs what the tests need
# when it is missing, then runs the whole suite. The README's test command; `.ci/run` calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need (a browser download at test time is not possible here;
# Debian's packages are):
# - chromium + chromium-driver: the live page's browser tests (tests/api/browser.rs) drive
#   headless Chromium through ChromeDriver;
# - nginx: the scale-out test (tests/api/scaleout.rs) runs two instances behind
#   deploy/nginx.conf.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} for the tests" >&2
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    # Install without starting nginx's system service: the tests run their own nginx.
    $sudo_ env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CI=1: the tests that need Chromium or nginx fail rather than skip if they cannot run.
CI=1 cargo test --locked --workspace --all-targets
