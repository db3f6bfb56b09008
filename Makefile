# gemmalog: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast test-faults lint bench docs clean

venv: $(STAMP)

# torch is pinned first so the CPU wheel on this machine is used, never a CUDA build.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[trl,dev,report,serve,remote]"
	touch $(STAMP)

demo: venv
	$(PY) examples/demo.py

test: venv
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not slow and not faults and not spark"

test-faults: venv
	$(PY) -m pytest -q -m faults

lint: venv
	$(PY) -m ruff check gemmalog tests benchmarks examples
	$(PY) -m ruff format --check gemmalog tests benchmarks examples
	$(PY) -m mypy

bench: venv
	$(PY) benchmarks/bench_hot_path.py --json benchmarks/results/hot_path_2core.json \
		> benchmarks/results/hot_path_2core.md
	# CPU per event of each sink of the seed configuration, against the raw floor.
	$(PY) benchmarks/bench_sinks.py --json benchmarks/results/sinks_2core.json \
		> benchmarks/results/sinks_2core.md
	# GRPO training overhead (CPU per thread + alternating step times; trackio and wandb when
	# installed), on the tiny model and a larger one, and import time: the tables in
	# docs/performance.md. ~20-40 min on 2 cores.
	$(PY) benchmarks/bench_training_overhead.py --model tiny,small --rounds 8 --steps 12 \
		--imports 10 --out benchmarks/results/training_overhead_2core

docs: venv
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache gemmalog_runs
