# authward: the two entry points a newcomer needs. Both install everything on first use.
#   make run    the main job: `authward serve` (demo mode, files in var/, http://127.0.0.1:8000)
#   make test   the whole test suite: ruff, mypy --strict, pytest on SQLite and PostgreSQL

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install run test lint typecheck pytest bench bench-http clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# openid-client 6 for the interop suite (tests/e2e/test_interop_openid_client.py), pinned by
# its package-lock.json; needs Node.js 20+ and npm (the tests need it, `make run` does not).
INTEROP := tests/e2e/interop
$(INTEROP)/node_modules/.installed: $(INTEROP)/package.json $(INTEROP)/package-lock.json
	cd $(INTEROP) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed $(INTEROP)/node_modules/.installed

run: $(BIN)/.installed
	$(BIN)/authward serve

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install
	$(BIN)/python -m bench

# The HTTP benchmark of `authward serve` against a floor app (docs/performance.md); about 11
# minutes. Pass options with BENCH_HTTP_ARGS, e.g. BENCH_HTTP_ARGS='--engines sqlite --duration 2'.
BENCH_HTTP_ARGS ?=
bench-http: install
	$(BIN)/python -m bench http $(BENCH_HTTP_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache $(INTEROP)/node_modules
