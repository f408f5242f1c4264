#!/usr/bin/env bash
# Install what sitrep needs on Debian 12 (idempotent): PostgreSQL 15 + PostGIS 3, Redis 7,
# a virtualenv with sitrep, and the built web app. `--dev` adds test tools (Chromium for browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[ "${1:-}" = "--dev" ] && DEV=1
PYTHON=${PYTHON:-python3}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

need=()
for pkg in postgresql-15 postgresql-15-postgis-3 redis-server; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "$DEV" = 1 ]; then
  dpkg -s chromium >/dev/null 2>&1 || need+=("chromium")
fi
command -v npm >/dev/null 2>&1 || need+=("nodejs" "npm")
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Python environment; reinstalled only when pyproject.toml changes (a dev install serves both).
stamp=".venv/.sitrep-installed"
proj="$(sha256sum pyproject.toml | cut -d' ' -f1)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
installed="$(cat "$stamp" 2>/dev/null || true)"
if [ "$installed" != "$proj-dev" ] && [ "$installed" != "$proj-$DEV" ]; then
  .venv/bin/pip install -q --upgrade pip
  if [ "$DEV" = 1 ]; then extras='.[dev]'; else extras='.'; fi
  .venv/bin/pip install -q -e "$extras"
  if [ "$DEV" = 1 ]; then echo "$proj-dev" > "$stamp"; else echo "$proj-0" > "$stamp"; fi
fi

# The web app (MapLibre command center), rebuilt when anything under web/ changes.
if [ -f web/package.json ]; then
  wstamp="web/dist/.sitrep-built"
  wwant="$(find web -path web/node_modules -prune -o -path web/dist -prune -o -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$wstamp" 2>/dev/null || true)" != "$wwant" ]; then
    echo "setup: building web/"
    if [ -f web/package-lock.json ]; then (cd web && npm ci --no-audit --no-fund --loglevel=error); else (cd web && npm install --no-audit --no-fund --loglevel=error); fi
    (cd web && npm run build --silent)
    echo "$wwant" > "$wstamp"
  fi
fi
echo "setup: ready"
