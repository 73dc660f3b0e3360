# Contributor commands. Each target creates .venv on first use (local torch wheels; see
# requirements-dev.txt), so on a fresh clone `make demo` and `make test` are all you need.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint oracle bench

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(VENV)/bin/pip install --quiet -r requirements-bench.txt
	touch $@

demo: $(VENV)/.installed
	$(PY) -m differential.demo --out demo-output

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

oracle: $(VENV)/.installed
	$(PY) -m differential.oracle.benchmark --json oracle-benchmark.json

bench: $(VENV)/.bench-installed
	PYTHONPATH=. $(PY) benchmarks/blend_cost.py
