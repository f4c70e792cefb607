#!/usr/bin/env bash
# One command: registrations per second end to end, beside the raw limits, with peak memory per service.
#   bash bench/run.sh                         # 2000 registrations, 50 clients, via HTTP, DB auto
#   bash bench/run.sh --n 500 --via rpc       # without the web front (NATS request to registry)
#   FORUM_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test bash bench/run.sh
#   bash bench/run.sh rsvp [--members 600 --seats 150 --clients 200]   # the RSVP rush beside its floor
#   bash bench/run.sh fanout [--subscribers 20000]   # another benchmark: fanout, ledger, minutes, rsvp
#   bash bench/run.sh pages [--seconds 10]   # the public lists with years of data, 50 readers, beside their floor
# All options: bash bench/run.sh --help. Details: bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
  echo "no $PY: create the venv and install the project first (python3.11 -m venv .venv && .venv/bin/pip install -e '.[test]')" >&2
  exit 2
fi
case "${1:-}" in
  fanout|ledger|minutes|rsvp|pages) bench="$1"; shift; exec "$PY" -m "bench.$bench" "$@" ;;
  registrations) shift ;;
esac
exec "$PY" -m bench.registrations "$@"
