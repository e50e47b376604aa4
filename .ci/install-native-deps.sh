#!/usr/bin/env bash
# Headers for walrus's optional C extensions: liburing (the io_uring backend) and zlib (the
# record codec's C accelerators). Installs them with apt-get only when missing; quiet.
set -euo pipefail
want=()
[ -f /usr/include/liburing.h ] || want+=(liburing-dev)
[ -f /usr/include/zlib.h ] || want+=(zlib1g-dev)
[ ${#want[@]} -eq 0 ] && exit 0
bash "$(dirname "$0")/apt-install-missing.sh" "${want[@]}" || {
    echo "install-native-deps: install ${want[*]} to build the C extensions" >&2
    exit 1
}
