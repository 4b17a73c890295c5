# Each target installs what it needs into .venv first (a fresh clone needs nothing else).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.ppcmk-installed

.PHONY: install system demo test lint names bench serve clean

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

# the type checker finds the folders installed as ppcmk_<folder> (cli/ is ppcmk_cli, ...) through these links
names:
	@mkdir -p build/names
	@for folder in cli sandbox flows tasks blocks deployments; do ln -sfn ../../$$folder build/names/ppcmk_$$folder; done

lint: $(STAMP) names
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

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
