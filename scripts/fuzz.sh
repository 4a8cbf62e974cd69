#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a while: scripts/fuzz.sh [seconds] (default 5).
#
# Targets are found by their declarations (func FuzzX(f *testing.F) in *_test.go files), so
# nothing is compiled just to list them. Each runs with -fuzz for the given time, after its
# seed corpus (f.Add and testdata/fuzz/FuzzX/). A failing input is written to
# testdata/fuzz/FuzzX/ of its package: commit it with the fix, as a regression seed.
#
# The targets under internal/httpapi start a real service with its PostgreSQL servers once
# (in the coordinating process) and share it with their fuzzing workers; see
# testserver.ForFuzz. NEONAUTH_FUZZ_PARALLEL sets the number of workers (default 2).
#
# Every target runs even when one fails; the exit status is 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-5}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [seconds]" >&2
  exit 2
fi
GO="${GO:-go}"
parallel="${NEONAUTH_FUZZ_PARALLEL:-2}"

# "dir name" lines, one per target, in a stable order.
targets="$(grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' \
  --exclude-dir=node_modules --exclude-dir=testdata . |
  sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|\1 \2|' | sort)"
if [ -z "$targets" ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi

failed=()
start=$SECONDS
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

# fuzz_once runs one target, its output shown and kept in $out.
fuzz_once() {
  "$GO" test -run '^$' -fuzz "^${2}\$" -fuzztime "${seconds}s" \
    -fuzzminimizetime 10s -parallel "$parallel" "./$1" 2>&1 | tee "$out"
  return "${PIPESTATUS[0]}"
}

while read -r dir name; do
  echo "fuzz: $name in ./$dir for ${seconds}s"
  if fuzz_once "$dir" "$name"; then
    continue
  fi
  # The fuzzing engine itself sometimes ends a run with only "context deadline exceeded"
  # (a worker still busy when -fuzztime runs out), with no failing input: run that target
  # once more. A real failure writes its input and fails again.
  if ! grep -q 'Failing input written' "$out" && grep -q 'context deadline exceeded' "$out"; then
    echo "fuzz: $name: the engine timed out without a failing input; once more"
    if fuzz_once "$dir" "$name"; then
      continue
    fi
  fi
  failed+=("./$dir $name")
done <<<"$targets"

echo "fuzz: $(wc -l <<<"$targets") targets in $((SECONDS - start))s"
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'fuzz: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
