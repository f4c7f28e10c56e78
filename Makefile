# Quick start:  make demo   (distil -> sample -> evaluate on the embedded default, CPU, no downloads)
#               make test   (the whole test suite; what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo demo-quick test test-fast stats bench-wavelets clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -c constraints.txt torch
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

RUN := runs/default

# distil (resumes if interrupted) -> eval.py report: sample student and teacher (reused on a re-run), spectra,
# scores, FID/KID, probe, FINC student vs teacher, STIG refinement -> report.html.
# DDIM 20 rather than the report's default 50: 2.5x less sampling, and the multi-seed study (docs/results.md)
# scores both models alike at DDIM 20 and 50.
demo: $(VENV)/.installed
	$(PY) train.py configs/default.yaml --resume
	$(PY) eval.py report $(RUN)/model --teacher assets/teacher --reference patches:heldout --num-images 256 \
		--steps 20 --stig-steps 1000 --out $(RUN)/report
	@echo
	@echo "student:  $(RUN)/model            (python sample.py $(RUN)/model --num-images 64 --out DIR)"
	@echo "training: $(RUN)/evals/step-N/grid.png, scores.json  (the EMA student every 250 steps; $(RUN)/report/training.png)"
	@echo "report:   $(RUN)/report/report.html  (open it in a browser; every number in $(RUN)/report/metrics.json)"
	@echo "samples:  $(RUN)/report/samples/student/grid.png  $(RUN)/report/samples/teacher/grid.png"
	@echo "spectra:  $(RUN)/report/spectrum/spectra.png"
	@echo "probe:    $(RUN)/report/probe/probe.png  $(RUN)/report/probe/probe.md"
	@echo "finc:     $(RUN)/report/finc/finc_modes.png  $(RUN)/report/finc/finc.json"
	@echo "stig:     $(RUN)/report/samples/student_stig/grid.png  (refiner: $(RUN)/report/stig/refiner)"

# The whole chain in a few minutes on a 2-core CPU: a short distillation, a small report. Its numbers only
# show that every stage runs; `make demo` is the one whose numbers the docs report.
QUICK := runs/quick
demo-quick: $(VENV)/.installed
	@echo "[1/2] distil 100 steps -> $(QUICK)/model"
	$(PY) train.py configs/default.yaml max_steps=100 checkpoint_every=50 output_dir=$(QUICK) --resume
	@echo "[2/2] report: 64 samples each (DDIM 20), spectra, FID/KID, probe, FINC, STIG 100 steps"
	$(PY) eval.py report $(QUICK)/model --teacher assets/teacher --reference patches:heldout --num-images 64 --steps 20 \
		--stig-steps 100 --timesteps 50,300,700 --bootstrap 50 --out $(QUICK)/report
	@echo
	@echo "student:  $(QUICK)/model"
	@echo "report:   $(QUICK)/report/report.html  (every number in $(QUICK)/report/metrics.json)"

test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --durations=12

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

stats: $(VENV)/.installed
	$(PY) -m wgunet.training.sizes

.venv-bench/.installed: pyproject.toml bench/requirements.txt constraints.txt
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet -c constraints.txt torch
	.venv-bench/bin/pip install --quiet -c constraints.txt -e . -r bench/requirements.txt
	touch $@

bench-wavelets: .venv-bench/.installed
	.venv-bench/bin/python bench/wavelets.py

clean:
	rm -rf $(VENV) .venv-bench runs
