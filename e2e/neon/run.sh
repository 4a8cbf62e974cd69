#!/usr/bin/env bash
# Runs Neon's official clients (@neondatabase/api-client, neonctl, @neon/sdk) against
# `neonauth serve`. Each test file starts its own server on 127.0.0.1:0.
#
#   NEONAUTH_BIN=/path/to/neonauth bash e2e/neon/run.sh [extra node --test arguments]
#
# NEONAUTH_BIN defaults to bin/neonauth at the repository root (go build -o bin/neonauth
# ./cmd/neonauth). Exits non-zero when a test fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -n "${NEONAUTH_BIN:-}" ]]; then
  NEONAUTH_BIN="$(cd "$(dirname "$NEONAUTH_BIN")" && pwd)/$(basename "$NEONAUTH_BIN")"
else
  NEONAUTH_BIN="$(cd "$here/../.." && pwd)/bin/neonauth"
fi
export NEONAUTH_BIN
if [[ ! -x "$NEONAUTH_BIN" ]]; then
  echo "run.sh: no neonauth binary at $NEONAUTH_BIN; build it with" >&2
  echo "  go build -o bin/neonauth ./cmd/neonauth   (or set NEONAUTH_BIN)" >&2
  exit 2
fi

cd "$here"

# npm writes node_modules/.package-lock.json on every install; reinstall when it is missing
# or older than package-lock.json.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

exec node --test --test-reporter=spec --test-concurrency=3 --test-timeout=90000 "$@" \
  api-client.test.mjs neonctl.test.mjs neon-sdk.test.mjs
