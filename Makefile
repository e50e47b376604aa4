# Every target sets itself up: a virtual environment in .venv with the package installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck check docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,plot]'
	touch $(STAMP)

## demo: the seed's first example, then a short benchmark
demo: $(STAMP)
	$(PY) examples/quickstart.py
	$(PY) -m walrus bench writes --duration 5 --threads 2 --out bench_results/demo

## test: the whole test suite
test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check walrus tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

## docs: build the documentation site into site/ (strict: a broken link or anchor fails)
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis wal_files site
