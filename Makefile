# authward: the two entry points a newcomer needs. Both install everything on first use.
#   make run    the main job (today: create the embedded SQLite schema, then the CLI)
#   make test   the whole test suite: ruff, mypy --strict, pytest on SQLite and PostgreSQL

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DB_URL ?= sqlite:///var/authward.db
PYTEST_ARGS ?=

.PHONY: install run test lint typecheck pytest bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install
	mkdir -p var
	$(BIN)/authward migrate --database-url $(DB_URL)
	$(BIN)/authward --help

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
