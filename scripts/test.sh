#!/usr/bin/env bash
# Runs every test of chunkstream on a fresh Debian machine: installs what the tests need
# when it is missing, then runs the whole suite. The README's test command; `.ci/run` calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

# The live page's browser tests (tests/api/browser.rs) drive Debian's headless Chromium
# through ChromeDriver: install both when missing (a browser download at test time is not
# possible; Debian's packages are).
if [ ! -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null 2>&1; then
    echo "installing chromium and chromium-driver for the browser tests" >&2
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

cargo test --locked --all-targets
