#!/bin/sh
# Installs Debian's chromium + chromium-driver for the browser tests when they are missing.
# Exits 0 when both are (now) on PATH; non-zero, with the reason on stderr, when they cannot be installed.
set -e
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "chromium/chromedriver missing and not root: cannot apt-get install them" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium/chromedriver missing and no apt-get on this machine" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for a dpkg lock held by someone else instead of failing at once.
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
