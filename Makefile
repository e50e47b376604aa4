# Every target sets itself up: a virtual environment in .venv with the package installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test soak lint typecheck check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,plot]'
	touch $(STAMP)

## demo: the seed's first example, then a short benchmark
demo: $(STAMP)
	$(PY) examples/quickstart.py
	$(PY) -m walrus bench writes --duration 5 --threads 2 --out bench_results/demo

## test: the whole test suite (the soak aside)
test: $(STAMP)
	$(PY) -m pytest -q

## soak: the long-running soak (SOAK_SECONDS=120 per backend); prints memory, files and disk
soak: $(STAMP)
	$(PY) -m pytest -q -m soak -s tests/test_stress.py

lint: $(STAMP)
	$(VENV)/bin/ruff check walrus tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis wal_files
