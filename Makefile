# Contributor commands. Each target creates .venv on first use (local torch wheels; see
# requirements-dev.txt), so on a fresh clone `make demo` and `make test` are all you need.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test docs-check oracle bench fuzz webui-test forge-test

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

# Every relative link and #anchor in README.md and docs/*.md resolves (also part of `make test`).
docs-check: $(VENV)/.installed
	$(PY) -m pytest tests/test_docs_links.py

oracle: $(VENV)/.installed
	$(PY) -m differential.oracle.benchmark --json oracle-benchmark.json
	$(PY) -m differential.oracle.substep_benchmark --json oracle-substep.json

bench: $(VENV)/.bench-installed
	PYTHONPATH=. $(PY) benchmarks/blend_cost.py

fuzz: $(VENV)/.installed
	PYTHONPATH=. $(PY) benchmarks/fuzz.py --minutes 10

$(VENV)/.webui-test-installed: $(VENV)/.installed requirements-webui-test.txt
	$(VENV)/bin/pip install --quiet -r requirements-webui-test.txt
	touch $@

# Needs an A1111 v1.10.1 checkout: make webui-test DD_WEBUI_DIR=/path/to/stable-diffusion-webui
webui-test: $(VENV)/.webui-test-installed
	DD_WEBUI_DIR=$(DD_WEBUI_DIR) $(PY) -m pytest tests/webui

# Needs a Forge checkout (dfdcbab) with its venv: make forge-test DD_FORGE_DIR=/path/to/stable-diffusion-webui-forge
forge-test: $(VENV)/.webui-test-installed
	DD_FORGE_DIR=$(DD_FORGE_DIR) $(PY) -m pytest tests/forge
