# Every target creates .venv and installs the project on first use, so each is the one command to type.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DAGSTER_HOME ?= $(CURDIR)/.iwatch/dagster_home

.PHONY: install test test-lowest lint typecheck unit run serve dev bench clean

# uv resolves and installs the dependency tree in seconds where pip takes minutes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev]'
	touch $@

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

run: $(STAMP)
	$(BIN)/python -m example_project.run

# The local server with the key the example project uses when IWATCH_URL is not set.
serve: $(STAMP)
	$(BIN)/iwatch local serve --data .iwatch/local --api-key local-demo-key

dev: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/iwatch local serve --data .iwatch/local --api-key local-demo-key & server=$$!; \
	trap 'kill $$server' EXIT INT TERM; \
	DAGSTER_HOME=$(DAGSTER_HOME) $(BIN)/dagster dev -m example_project.definitions

# Lint, types and the suite on the lowest versions pyproject.toml allows for each direct dependency (their own
# dependencies at their newest), in a venv of its own made afresh each time so that no newer version lingers.
# check_floors fails when a dependency did not land exactly on its bound. Not part of `test`.
LOWEST := .venv-lowest
test-lowest:
	$(PYTHON) -m venv --clear $(LOWEST)
	$(LOWEST)/bin/python -m pip install -q uv
	$(LOWEST)/bin/uv pip install -q --compile-bytecode --python $(LOWEST)/bin/python --resolution lowest-direct -e '.[dev]'
	$(LOWEST)/bin/python tests/check_floors.py
	$(LOWEST)/bin/ruff check --no-cache .
	$(LOWEST)/bin/ruff format --check --no-cache .
	$(LOWEST)/bin/mypy --cache-dir $(LOWEST)/mypy_cache
	$(LOWEST)/bin/pytest -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m tests.bench.ingest

clean:
	rm -rf $(VENV) $(LOWEST) .iwatch .pytest_cache .mypy_cache .ruff_cache *.egg-info
