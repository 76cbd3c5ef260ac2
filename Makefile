# Every target creates .venv and installs what it needs on first use, so each is the one command to type.
# Three install levels, each with its own stamp so that a second call installs nothing:
#   run  - the package and its runtime dependencies (make run, make serve)
#   dev  - plus the Dagster webserver (make dev)
#   test - plus the development tools: pytest, ruff, mypy, moto, ... (make test, make install, make bench)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
RUN_STAMP := $(VENV)/.stamp-run
DEV_STAMP := $(VENV)/.stamp-dev
TEST_STAMP := $(VENV)/.stamp-test
# uv resolves and installs the dependency tree in seconds where pip takes minutes. No --compile-bytecode: Python
# compiles the modules a command imports on first use, a fraction of the whole tree.
INSTALL := $(UV) pip install -q --python $(BIN)/python
DAGSTER_HOME ?= $(CURDIR)/.iwatch/dagster_home

.PHONY: install test test-lowest lint typecheck unit run serve dev bench load clean

$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv

$(RUN_STAMP): pyproject.toml | $(UV)
	$(INSTALL) -e .
	touch $@

# A richer level also satisfies the levels below it.
$(DEV_STAMP): pyproject.toml | $(UV)
	$(INSTALL) -e '.[webserver]'
	touch $@ $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(UV)
	$(INSTALL) -e '.[dev]'
	touch $@ $(DEV_STAMP) $(RUN_STAMP)

install: $(TEST_STAMP)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

unit: $(TEST_STAMP)
	$(BIN)/pytest

test: lint typecheck unit

run: $(RUN_STAMP)
	$(BIN)/python -m example_project.run

# The local server with the key the example project uses when IWATCH_URL is not set.
serve: $(RUN_STAMP)
	$(BIN)/iwatch local serve --data .iwatch/local --api-key local-demo-key

dev: $(DEV_STAMP)
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

# Side-by-side benchmarks, not part of test: every variant in fresh processes, interleaved; ends with a BENCH line.
bench: $(TEST_STAMP)
	$(BIN)/python -m tests.bench

# 200 concurrent executions through one client against the local server with injected faults (loopback only).
load: $(TEST_STAMP)
	$(BIN)/python -m tests.load.run

clean:
	rm -rf $(VENV) $(LOWEST) .iwatch .pytest_cache .mypy_cache .ruff_cache *.egg-info
