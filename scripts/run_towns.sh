#!/usr/bin/env bash
# Run the town pipeline for many towns in parallel; each town is an independent make run
# with its outputs and logs under data/out/<insee>/.
#
#   scripts/run_towns.sh [-j JOBS] INSEE...          e.g. scripts/run_towns.sh 01306 46127
#   scripts/run_towns.sh -j 2 $(.venv/bin/pvdgeo -q towns --pvd)    all 1,645 PVD towns
#
# A failing town does not stop the others; the summary lists failures and their logs.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=2
if [ "${1:-}" = "-j" ]; then jobs="$2"; shift 2; fi
[ $# -gt 0 ] || { sed -n '2,8p' "$0"; exit 2; }
make --no-print-directory install >/dev/null
# Shared national tables first (once), so parallel towns do not race to build them.
make --no-print-directory data/interim/communes.parquet facility-counts landcover-communes
failed=$(mktemp)
printf '%s\n' "$@" | xargs -P "$jobs" -I{} sh -c '
  mkdir -p data/out/{}/logs
  if make --no-print-directory town INSEE={} > data/out/{}/logs/make.log 2>&1; then
    echo "ok     {}"
  else
    echo "FAILED {} (see data/out/{}/logs/make.log)"; echo {} >> '"$failed"'
  fi'
n_failed=$(wc -l < "$failed"); rm -f "$failed"
echo "$(( $# - n_failed )) of $# towns built; $n_failed failed"
[ "$n_failed" -eq 0 ]
