# Every target creates its own virtualenv (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build from local disk here; override on a GPU machine, e.g. `make TORCH_SPEC=torch install`.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install test test-all demo bench app space clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -n 2 --dist loadfile tests   # two workers, one test file each at a time

test-all: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(PY) scripts/demo.py --resume true   # a second `make demo` reuses the stages the first one finished

app: $(STAMP)   # the app on http://127.0.0.1:7860 with the demo's runs; `make app MODELS="dir org/id"` for others
	$(PY) -m lens_hf.app $(MODELS)

space: $(STAMP)   # app/ as a Hugging Face Space: the lens-hf wheel beside app/app.py
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w app .

bench: $(STAMP)   # the bench extra (caustics, lenstronomy) comes with the dev install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info
