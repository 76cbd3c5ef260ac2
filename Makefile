# Every target creates .venv and installs the project on first use, so each is the one command to type.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DAGSTER_HOME ?= $(CURDIR)/.iwatch/dagster_home

.PHONY: install test lint typecheck unit run serve dev bench clean

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

# Side-by-side benchmarks, not part of test: every variant in fresh processes, interleaved; ends with a BENCH line.
bench: $(STAMP)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .iwatch .pytest_cache .mypy_cache .ruff_cache *.egg-info
