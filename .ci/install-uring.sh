#!/usr/bin/env bash
# Installs liburing's headers and static library (Debian's liburing-dev) when they are
# missing, so that a build with WALRUS_URING=1 can never silently lose the io_uring backend.
# Idempotent and quiet: does nothing when the headers are there already.
set -euo pipefail

if [ -f /usr/include/liburing.h ]; then
    exit 0
fi
if [ "$(uname -s)" != Linux ]; then
    echo "install-uring: io_uring is Linux-only; nothing to install on $(uname -s)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-uring: no apt-get here; install liburing's development files by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends liburing-dev >/dev/null
test -f /usr/include/liburing.h
