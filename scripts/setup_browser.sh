#!/usr/bin/env bash
# Installs what the dashboard tests drive: Debian's chromium, its matching chromedriver and a font for the
# screenshots (idempotent and quiet; nothing to do when all three are there). Usage: scripts/setup_browser.sh
set -euo pipefail

have_font() { [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; }
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && have_font; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: the dashboard tests need chromium, chromedriver and a font; no apt-get here: install them" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing chromium and chromium-driver for the dashboard tests" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null 2>&1
