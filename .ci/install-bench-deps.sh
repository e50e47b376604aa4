#!/usr/bin/env bash
# What the asv dashboard and its counted benchmarks use: valgrind (instructions per entry),
# strace (system calls per entry), Chromium (the offline dashboard check) and npm (the
# dashboard's scripts, from the npm registry). Installs with apt-get only what is missing,
# then the dashboard's npm packages (pinned in asv_bench/dashboard/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."
want=()
command -v valgrind >/dev/null 2>&1 || want+=(valgrind)
command -v strace >/dev/null 2>&1 || want+=(strace)
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v npm >/dev/null 2>&1 || want+=(npm)
bash .ci/apt-install-missing.sh ${want[@]+"${want[@]}"}
if [ ! -d asv_bench/dashboard/node_modules ]; then
    (cd asv_bench/dashboard && npm ci --no-audit --no-fund --loglevel=error)
fi
