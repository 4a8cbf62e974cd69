#!/usr/bin/env bash
# Runs the end-to-end test of neonauth with the Stack Auth JavaScript SDK. It expects the
# binary to be built already (go build -o bin/neonauth ./cmd/neonauth), or NEONAUTH_BIN to
# name it. Dependencies are installed from package-lock.json only when node_modules is
# missing or older than the lock file.
set -euo pipefail
if [ -n "${NEONAUTH_BIN:-}" ]; then
  NEONAUTH_BIN="$(realpath -m "$NEONAUTH_BIN")" # relative to the caller's directory
  export NEONAUTH_BIN
fi
cd "$(dirname "$0")"
if [ ! -f node_modules/.package-lock.json ] ||
  [ package-lock.json -nt node_modules/.package-lock.json ] ||
  [ package.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --ignore-scripts # no package needs its install script
fi
exec node --test --test-reporter=spec stack-sdk.test.mjs
