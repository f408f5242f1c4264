#!/usr/bin/env bash
# `make test`: the same services as `make run`, then lint, types and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/sitrep services start
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict on geo/)"
.venv/bin/mypy geo feeds
echo "== pytest"
set +e
.venv/bin/pytest tests -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
