#!/usr/bin/env bash
# The test suite: strict type check, then vitest (one forked process: Dawn crashes in worker
# threads). Ends with one line "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/reef-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

echo "type check (tsc --noEmit, strict)"
if ! node node_modules/typescript/bin/tsc --noEmit -p tsconfig.json; then
  echo "0 passed, 1 failed"
  exit 1
fi

report=$(mktemp -t reef-vitest-XXXXXX.json)
node node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile.json="$report" "$@"
status=$?
node -e '
  const fs = require("fs");
  let r = null;
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch {}
  if (!r) { console.log("0 passed, 1 failed"); process.exit(0); }
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ""}`);
' "$report"
rm -f "$report"
exit $status
