# sitrep: the README's two commands are `make run` and `make test`.
.PHONY: run test setup setup-dev services stop lint bench-auth clean

run: setup                 ## install what is missing, start PostgreSQL+Redis, migrate, seed demo data, serve on :8000
	scripts/run-demo.sh

test: setup-dev            ## the same services, then ruff, mypy (strict on geo/) and pytest
	scripts/test.sh

setup:
	scripts/setup.sh

setup-dev:
	scripts/setup.sh --dev

services:                  ## start PostgreSQL and Redis on loopback
	.venv/bin/sitrep services start

stop:                      ## stop the local Redis started by sitrep
	.venv/bin/sitrep services stop

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy geo feeds

bench-auth:                ## authenticated GET /v1/me vs a bare route of the same app
	.venv/bin/python bench/auth.py

clean:
	rm -rf .venv .sitrep web/node_modules web/dist
