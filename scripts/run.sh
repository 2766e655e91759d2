#!/usr/bin/env bash
# One entry point for a fresh machine: installs what reef needs (scripts/setup.sh), then runs
#   demo   the main job (today: train the demo model on the GPU, or on lavapipe without one)
#   test   the test suite (type check + vitest)
#   bench  the kernel benchmarks (kernels-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-}"
shift || true
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/reef-xdg-$(id -u)}"
case "$what" in
  demo)  bash scripts/setup.sh; exec node bin/reef.mjs demo "$@" ;;
  test)  bash scripts/setup.sh; exec bash scripts/test.sh "$@" ;;
  bench) bash scripts/setup.sh; exec node bin/reef.mjs bench "$@" ;;
  *) echo "usage: bash scripts/run.sh demo|test|bench [flags]" >&2; exit 2 ;;
esac
