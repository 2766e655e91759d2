#!/usr/bin/env bash
# Installs what reef needs on this machine: the npm packages, Chromium for the browser-page test and,
# on a Linux machine where Dawn finds no WebGPU adapter, Mesa's software Vulkan driver (lavapipe)
# from the distribution's backports suite.
# Safe to run again: each step is skipped when it is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'reef setup: %s\n' "$*" >&2; }

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/reef-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

command -v node >/dev/null || { say "Node.js (>= 20.19) is required: install it first (e.g. apt-get install nodejs npm)."; exit 1; }

# 1. npm packages (their `prepare` step bundles the CLI), reinstalled when package.json or the
#    lock file changed since the last install.
stamp() { cat package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-16; }
if [ ! -f node_modules/.reef-installed ] || [ "$(cat node_modules/.reef-installed)" != "$(stamp)" ]; then
  say "installing npm packages"
  npm install --no-audit --no-fund >&2
  stamp > node_modules/.reef-installed
fi

# 2. Chromium for the browser-page test (test/browser/), driven by puppeteer-core, which never
#    downloads a browser of its own. Debian's package; REEF_CHROMIUM may name another binary.
if [ -z "${REEF_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null; then
    csudo=""
    [ "$(id -u)" = 0 ] || csudo="sudo"
    if [ -z "$csudo" ] || command -v sudo >/dev/null; then
      say "installing Chromium (Debian package 'chromium') for the browser-page test"
      $csudo apt-get update -qq >&2 || true
      DEBIAN_FRONTEND=noninteractive $csudo apt-get install -y -qq chromium >&2 \
        || say "could not install chromium: the browser-page test will be skipped (and fails under CI=true)"
    else
      say "no root or sudo to install chromium: the browser-page test will be skipped (and fails under CI=true)"
    fi
  else
    say "no /usr/bin/chromium: install Chromium and set REEF_CHROMIUM for the browser-page test"
  fi
fi

# 3. A WebGPU adapter. Dawn needs Vulkan; with no GPU, Mesa's lavapipe provides a software one.
if node scripts/probe-adapter.mjs >/dev/null 2>&1; then
  exit 0
fi
if [ "$(uname -s)" != Linux ] || ! command -v apt-get >/dev/null; then
  say "no WebGPU adapter found. Install your GPU's Vulkan/Metal/D3D12 driver, or a software Vulkan driver (Mesa lavapipe)."
  exit 1
fi

. /etc/os-release
codename="${VERSION_CODENAME:-}"
[ -n "$codename" ] || { say "cannot tell the Debian release (no VERSION_CODENAME in /etc/os-release)"; exit 1; }
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { say "need root to install mesa-vulkan-drivers from ${codename}-backports"; exit 1; }
  sudo="sudo"
fi

say "no WebGPU adapter found: installing Mesa's software Vulkan driver (lavapipe) from ${codename}-backports"
say "(${codename}'s own mesa is too old for Dawn; the backports build 25.x works)"

# The backports suite comes from the same mirror this machine already uses for its main suite.
if ! grep -rqs -- "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror=$(node scripts/apt-mirror.mjs "$codename") || { say "no apt source for suite '$codename' found to take the mirror from"; exit 1; }
  say "adding ${codename}-backports from $mirror"
  printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$codename" | $sudo tee /etc/apt/sources.list.d/reef-backports.sources >/dev/null
fi
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -t "${codename}-backports" mesa-vulkan-drivers libvulkan1 >&2

if node scripts/probe-adapter.mjs >&2; then
  say "software Vulkan adapter ready"
else
  say "still no WebGPU adapter after installing lavapipe; run 'node scripts/probe-adapter.mjs' with VK_LOADER_DEBUG=error,warn to see why"
  exit 1
fi
