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

RUN := runs/default

# distil (resumes if interrupted) -> sample student and teacher -> spectra, scores, probe, FINC
demo: $(VENV)/.installed
	$(PY) train.py configs/default.yaml --resume
	$(PY) sample.py $(RUN)/model --num 256 --out $(RUN)/samples/student --resume
	$(PY) sample.py assets/teacher --num 256 --out $(RUN)/samples/teacher --resume
	$(PY) eval.py spectrum --generated teacher=$(RUN)/samples/teacher --generated student=$(RUN)/samples/student \
		--reference patches:heldout --out $(RUN)/eval
	$(PY) eval.py probe teacher=assets/teacher student=$(RUN)/model --out $(RUN)/probe
	$(PY) eval.py finc --test $(RUN)/samples/student --reference $(RUN)/samples/teacher --out $(RUN)/finc
	@echo
	@echo "student:  $(RUN)/model            (python sample.py $(RUN)/model --num 64 --out DIR)"
	@echo "samples:  $(RUN)/samples/student/grid.png  $(RUN)/samples/teacher/grid.png"
	@echo "spectra:  $(RUN)/eval/spectra.png  $(RUN)/eval/metrics.json"
	@echo "probe:    $(RUN)/probe/probe.png  $(RUN)/probe/probe.md"
	@echo "finc:     $(RUN)/finc/finc_modes.png  $(RUN)/finc/finc.json"

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
