#!/usr/bin/env bash
# One entry point for a fresh machine: installs what reef needs (scripts/setup.sh), then runs
#   demo   the main job: a short `tiny` CT pretraining run on Debian's sample head CT (fetched and
#          cached on first use) into runs/demo-<time>/ (flags after `demo` go to reef pretrain)
#   test   the test suite (type check + vitest)
#   bench  the kernel benchmarks (kernels-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-}"
shift || true
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/reef-xdg-$(id -u)}"
case "$what" in
  demo)  bash scripts/setup.sh
         exec node bin/reef.mjs pretrain --data sample --preset tiny --steps 20 --checkpoint-every 10 \
           --out "runs/demo-$(date +%Y%m%d-%H%M%S)" "$@" ;;
  test)  bash scripts/setup.sh; exec bash scripts/test.sh "$@" ;;
  bench) bash scripts/setup.sh; exec node bin/reef.mjs bench "$@" ;;
  *) echo "usage: bash scripts/run.sh demo|test|bench [flags]" >&2; exit 2 ;;
esac
