#!/usr/bin/env bash
# apt-get install the Debian packages named, quietly (sudo when not root); for the
# install-*-deps scripts, which name only what is missing.
set -euo pipefail
[ $# -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$(basename "$0"): no apt-get; install $* yourself" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
