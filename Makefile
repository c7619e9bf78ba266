# `make demo` and `make test` work on a fresh clone with only Python 3.11 installed:
# they create .venv, install the project from setup.cfg, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKDIR ?= workdir/demo
PYTEST_WORKERS ?= 2

.PHONY: demo test install clean benchmark

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m experiments.great_parallel \
	  --config=experiments/configs/great_parallel.py:runlocal --workdir=$(WORKDIR)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests

benchmark: $(STAMP)
	$(BIN)/python -m benchmarks.dojo --out=benchmarks/dojo_cpu.json

clean:
	rm -rf $(VENV) workdir
