#!/usr/bin/env bash
# Headers for walrus's optional C extensions: liburing (the io_uring backend) and zlib (the
# record codec's C accelerators). Installs them with apt-get only when missing; quiet.
set -euo pipefail
want=()
[ -f /usr/include/liburing.h ] || want+=(liburing-dev)
[ -f /usr/include/zlib.h ] || want+=(zlib1g-dev)
[ ${#want[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-native-deps: no apt-get; install ${want[*]} yourself to build the C extensions" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${want[@]}" >/dev/null
