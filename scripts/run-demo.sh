#!/usr/bin/env bash
# `make run`: services, schema, demo data, local fake feeds, a simulated fleet, and the server.
set -euo pipefail
cd "$(dirname "$0")/.."
export SITREP_ENV=${SITREP_ENV:-development}
export SITREP_FEED_BASE_URL=${SITREP_FEED_BASE_URL:-http://127.0.0.1:8081}
SITREP=.venv/bin/sitrep
PORT=${SITREP_PORT:-8000}

$SITREP services start
$SITREP migrate
$SITREP seed-demo

mkdir -p .sitrep
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

# Local stand-ins for NWS, USGS, GDACS, FIRMS and CAP feeds (no internet needed).
if .venv/bin/python -c "import feeds.fake" 2>/dev/null; then
  $SITREP fake-feeds --port 8081 > .sitrep/fake-feeds.log 2>&1 &
  pids+=($!)
fi
# A simulated fleet once the server answers.
(
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
    sleep 1
  done
  if .venv/bin/python -c "import server.simulate" 2>/dev/null; then
    exec $SITREP simulate --url "http://127.0.0.1:$PORT" --fleet 240 --rate 60 --duration 86400 > .sitrep/simulate.log 2>&1
  fi
) &
pids+=($!)

echo "sitrep: serving on http://127.0.0.1:$PORT (log in as coord / ${SITREP_DEMO_PASSWORD:-sitrep-demo})"
$SITREP serve --port "$PORT"
