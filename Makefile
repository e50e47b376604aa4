# Every target sets itself up: a virtual environment in .venv with the package installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test soak lint typecheck check docs clean

NATIVE_SOURCES := setup.py $(wildcard walrus/_native/*.c walrus/_native/*.h walrus/_native/*_build.py)

# The C extensions need liburing and zlib headers: installed here when missing (Debian). Without
# them (and WALRUS_URING/WALRUS_SPEEDUPS unset) the install still works, without those parts.
$(STAMP): pyproject.toml $(NATIVE_SOURCES)
	-bash .ci/install-native-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,plot]'
	touch $(STAMP)

## demo: the quickstart example, then a short benchmark
demo: $(STAMP)
	$(PY) examples/quickstart.py
	$(PY) -m walrus bench writes --duration 5 --threads 2 --out bench_results/demo

## test: the whole test suite (the soak aside), the engine tests again in pure Python, ruff and
## mypy, all at once (tests/_suite.py); each runs to its end, and make fails if one failed
# WORKERS: pytest-xdist processes of the whole suite (tests sharing files are grouped with
# xdist_group), four per core: many tests wait on fsync, child processes or a NATS cluster, and
# another runs meanwhile; PURE_WORKERS: the pure-Python pass's, one per core (it is short and
# runs beside the first); PYTEST_ARGS: more options for both passes, e.g. PYTEST_ARGS='-k crash
# -x' (a pass that then selects no test is no failure); CHECKS: make targets run beside them.
WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) * 4 )))
PURE_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
PYTEST_ARGS ?=
CHECKS ?= lint typecheck
SUBMAKE = $(MAKE)
# (named through SUBMAKE: a recipe naming $(MAKE) itself would run even under `make -n`)
test: $(STAMP)
	@$(PY) -m tests._suite --workers $(WORKERS) --pure-python-workers $(PURE_WORKERS) \
		--pure-python-tests "$(PURE_PYTHON_TESTS)" --check "$(CHECKS)" --make "$(SUBMAKE)" \
		-- $(PYTEST_ARGS)

# The C accelerators must never change behaviour: these run without them too, on mmap (records
# encoded into the mapping) and pwrite (encoded into buffers; io_uring makes the same codec calls).
PURE_PYTHON_TESTS := tests/test_codec.py tests/test_basic.py tests/test_batch.py \
	tests/test_consistency.py tests/test_recovery.py tests/test_stateful.py \
	tests/test_power_loss.py tests/test_damage_reads.py

## soak: the long-running soak (SOAK_SECONDS=120 per backend); prints memory, files and disk
soak: $(STAMP)
	$(PY) -m pytest -q -m soak -s tests/test_stress.py

## --- benchmarks (docs/benchmarks.md) -------------------------------------------------------
# Like the original's Makefile: FSYNC, THREADS, BACKEND, DURATION and BATCH pass through to the
# WALRUS_* variables, e.g. `make bench-writes FSYNC=sync-each DURATION=30s`. OUT is the folder.
OUT ?= bench_results
BENCH := $(PY) -m walrus bench
BENCH_ENV = $(if $(FSYNC),WALRUS_FSYNC=$(FSYNC)) $(if $(THREADS),WALRUS_THREADS=$(THREADS)) \
	$(if $(BACKEND),WALRUS_BACKEND=$(BACKEND)) $(if $(DURATION),WALRUS_DURATION=$(DURATION)) \
	$(if $(BATCH),WALRUS_BATCH_SIZE=$(BATCH))
PEERS := $(VENV)/.peers
ASV := cd asv_bench && $(abspath $(VENV))/bin/asv
BASE ?= main

.PHONY: bench-writes bench-reads bench-scaling bench-batch bench-batch-scaling bench-compare \
	bench-targets bench-scale bench-backends \
	show-writes show-reads show-scaling show-batch show-batch-scaling show-compare \
	bench-and-show-writes bench-and-show-reads bench-and-show-scaling bench-and-show-compare \
	asv asv-continuous asv-history asv-publish asv-preview asv-check-dashboard asv-stability

$(PEERS): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,plot,peers]'
	touch $(PEERS)

## bench-writes: 10 threads appending 500-1024-byte entries in bursts (120 s)
bench-writes: $(STAMP)
	$(BENCH_ENV) $(BENCH) writes --out $(OUT)

## bench-reads: 60 s of 2000 x 100 KiB batch writes, then batch reads
bench-reads: $(STAMP)
	$(BENCH_ENV) $(BENCH) reads --out $(OUT)

## bench-scaling: append throughput for 1..10 threads (30 s each)
bench-scaling: $(STAMP)
	$(BENCH_ENV) $(BENCH) scaling --out $(OUT)

## bench-batch: 16 threads appending batches of 2000 (120 s)
bench-batch: $(STAMP)
	$(BENCH_ENV) $(BENCH) batch --out $(OUT)

## bench-batch-scaling: batch throughput for 1..10 threads (30 s each, batches of 256)
bench-batch-scaling: $(STAMP)
	$(BENCH_ENV) $(BENCH) batch-scaling --out $(OUT)

## bench-compare: walrus against plain-Python baselines, sqlite3, lmdb, LevelDB and RocksDB
bench-compare: $(PEERS)
	$(BENCH) compare --out $(OUT)

## bench-targets: the performance targets as ratios to plain-Python ceilings (docs/performance.md)
bench-targets: $(STAMP)
	$(BENCH) targets --repeats 5 --out $(OUT)/targets

## bench-scale: costs as topics and entries grow; reopen times (docs/performance.md)
bench-scale: $(STAMP)
	$(BENCH) scale --out $(OUT)/scale

## bench-backends: the built-in backends side by side (docs/backends.md)
bench-backends: $(STAMP)
	$(BENCH) backends --rounds 5

## show-*: plot a result as a PNG; opens it when a display exists, else prints its path
show-writes show-reads show-scaling show-batch show-batch-scaling show-compare: $(STAMP)
	$(BENCH) plot $(patsubst show-%,%,$@) --out $(OUT) --show

bench-and-show-writes: bench-writes
	$(MAKE) show-writes
bench-and-show-reads: bench-reads
	$(MAKE) show-reads
bench-and-show-scaling: bench-scaling
	$(MAKE) show-scaling
bench-and-show-compare: bench-compare
	$(MAKE) show-compare

# The series regressions are judged on: counted costs (instructions, system calls per entry),
# which the load beside them does not move. The timed series are for context (docs/benchmarks.md).
ASV_GATE ?= ^cost\.
RANGE ?= $(BASE)~10..$(BASE)
PORT ?= 8080
ASV_HTML := asv_bench/.asv/html
BENCH_TOOLS := $(VENV)/.bench-tools

## asv: the asv suite once on the installed tree (offline), results saved for HEAD
asv: $(STAMP) $(BENCH_TOOLS)
	$(ASV) machine --yes > /dev/null
	$(ASV) run --quick --python=same --show-stderr --set-commit-hash $$(git rev-parse HEAD)

# valgrind, strace, Chromium and the dashboard's npm packages (apt-get and npm ci, when missing)
$(BENCH_TOOLS): asv_bench/dashboard/package-lock.json | $(STAMP)
	bash .ci/install-bench-deps.sh
	touch $(BENCH_TOOLS)

## asv-continuous: BASE (main) against HEAD in asv's own environments, on the counted series
## (ASV_GATE); exits 1 when one costs 10 % more
asv-continuous: $(STAMP) $(BENCH_TOOLS)
	$(ASV) machine --yes > /dev/null
	$(ASV) continuous --show-stderr --factor 1.1 --bench '$(ASV_GATE)' $(BASE) $$(git rev-parse HEAD)

## asv-stability: the whole suite (or ASV_BENCH's regex) twice on HEAD's tree, then how far the
## two runs differ per series (docs/benchmarks.md); exits 1 unless 95 % agree within 10 %, none over 1.5x
ASV_BENCH ?= .
asv-stability: $(STAMP) $(BENCH_TOOLS)
	$(ASV) machine --yes > /dev/null
	$(PY) asv_bench/stability.py run --asv $(abspath $(VENV))/bin/asv --bench '$(ASV_BENCH)'

## asv-history: the whole suite on each commit of RANGE (default: BASE's last 10) not run yet
asv-history: $(STAMP) $(BENCH_TOOLS)
	$(ASV) machine --yes > /dev/null
	$(ASV) run --show-stderr --skip-existing-commits $(RANGE)

## asv-publish: the dashboard in asv_bench/.asv/html, its scripts from npm packages (no CDN)
asv-publish: $(STAMP) $(BENCH_TOOLS)
	$(ASV) publish
	$(PY) asv_bench/dashboard/offline.py vendor $(ASV_HTML)

## asv-preview: serve the dashboard on http://127.0.0.1:$(PORT)/ (Ctrl-C stops)
asv-preview:
	$(PY) -m http.server --bind 127.0.0.1 --directory $(ASV_HTML) $(PORT)

## asv-check-dashboard: open the dashboard in headless Chromium, offline; screenshots in $(OUT)/dashboard
asv-check-dashboard: $(STAMP) $(BENCH_TOOLS)
	$(PY) asv_bench/dashboard/offline.py check $(ASV_HTML) --screenshots $(OUT)/dashboard

lint: $(STAMP)
	$(VENV)/bin/ruff check walrus walrus_bench tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: test

## docs: build the documentation site into site/ (strict: a broken link or anchor fails)
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis wal_files site
