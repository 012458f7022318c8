#!/usr/bin/env bash
# Quick start: installs what is missing, builds, and runs the daemon in the
# foreground with etc/pulsegate.toml. Extra arguments go to `serve`, e.g.
#   bash scripts/run.sh --demo
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

pg_install_missing
pg_npm_ci
pg_setup build
ninja -C build -j2 daemon/pulsegate
exec ./build/daemon/pulsegate serve --config etc/pulsegate.toml "$@"
