#!/usr/bin/env bash
# Many towns in parallel: a thin wrapper of `pvdgeo batch` (Dask, resumable, retries, failures
# table in data/national/batch/). `-j N` is the number of workers.
#   scripts/run_towns.sh [-j N] INSEE...      e.g. scripts/run_towns.sh -j 2 --pvd
set -euo pipefail; cd "$(dirname "$0")/.."; [ "${1:-}" = "-j" ] && { w=$2; shift 2; } || w=2; make --no-print-directory install >/dev/null; exec .venv/bin/pvdgeo batch --workers "$w" "$@"
