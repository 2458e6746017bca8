#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the browser tests (tests/integration/test_browser.py).
# Does nothing when /usr/bin/chromium is already there; needs root (CI containers run as root) or sudo.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
    echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install_browser.sh: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi

# About 120 MB to download and 500 MB on disk (Debian's chromium + chromium-driver).
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core
"$CHROMIUM" --version
