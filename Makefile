# Quick start:  make demo   (distil -> sample -> evaluate on the embedded default, CPU, no downloads)
#               make test   (the whole test suite; what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast stats bench-wavelets clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m wgunet.stats

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

stats: $(VENV)/.installed
	$(PY) -m wgunet.stats

.venv-bench/.installed: pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet torch==2.13.0
	.venv-bench/bin/pip install --quiet -e . -r bench/requirements.txt
	touch $@

bench-wavelets: .venv-bench/.installed
	.venv-bench/bin/python bench/wavelets.py

clean:
	rm -rf $(VENV) .venv-bench runs
