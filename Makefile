# Each target installs what it needs into .venv first (a fresh clone needs nothing else).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.ppcmk-installed

.PHONY: install system demo test lint bench serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/ppcmk demo --prepare  # migrate the Prefect database the demo copies, once
	touch $(STAMP)

install: $(STAMP)

# Debian packages some tests need (chromium for the UI tests, postgresql for the multi-worker test)
system:
	bash .ci/system-deps.sh

demo: $(STAMP)
	$(BIN)/ppcmk demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# three workers on two cores: flow tests spend much of their time waiting on approvals and Prefect's API
test: lint system
	$(BIN)/python -m pytest -n 3 --dist worksteal

bench: $(STAMP)
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/reads.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/evidence.py

serve: $(STAMP)
	$(BIN)/ppcmk serve

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
