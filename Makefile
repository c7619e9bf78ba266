# `make demo` and `make test` work on a fresh clone with only Python 3.11 installed:
# they create .venv, install the project from setup.cfg, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKDIR ?= workdir/demo
PYTEST_WORKERS ?= 2

# `make benchmarks` regenerates every system benchmark's JSON and the tables of
# docs/BENCHMARKS.md from the current code (about 1 h on an idle 2-core CPU; the WAM
# run it trains first is about 20 min of it). Research experiments (benchmarks.imitation,
# policy_precision, perception_probe, tokenizer_targets) are not part of it: their
# commands and workdirs are in docs/BENCHMARKS.md and docs/RESULTS.md.
BENCH_WORKDIR ?= workdir/benchmarks
BENCH_CONFIG ?= experiments/configs/wam.py:runlocal
BENCH_SUFFIX ?= cpu
BENCH_MODEL := $(BENCH_WORKDIR)/wam

.PHONY: demo test install clean benchmarks benchmarks-system benchmarks-model metaworld \
	benchmark-tables

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
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup tests

# One after another, even under `make -j` (parallel benchmarks would time each other).
benchmarks: $(STAMP)
	$(MAKE) benchmarks-system
	$(MAKE) benchmarks-model
	$(MAKE) benchmark-tables

# No trained model needed.
benchmarks-system: $(STAMP)
	$(BIN)/python -m benchmarks.dojo --out=benchmarks/dojo_$(BENCH_SUFFIX).json
	$(BIN)/python -m benchmarks.experts --out=benchmarks/experts.json
	$(BIN)/python -m benchmarks.data --out=benchmarks/data_$(BENCH_SUFFIX).json \
	  --data_dir=$(BENCH_WORKDIR)/data
	$(BIN)/python -m benchmarks.train --out=benchmarks/train_$(BENCH_SUFFIX).json
	$(BIN)/python -m benchmarks.train --width=256 --nodreams --nobreakdown \
	  --out=benchmarks/train_$(BENCH_SUFFIX)_width256.json

# Trains a fresh WAM run with the current code (timed), then measures it.
benchmarks-model: $(STAMP)
	rm -rf $(BENCH_MODEL)
	$(BIN)/python -m benchmarks.wam_run --config=$(BENCH_CONFIG) --workdir=$(BENCH_MODEL) \
	  --out=benchmarks/wam_run_$(BENCH_SUFFIX).json
	$(BIN)/python -m benchmarks.dreams --workdir=$(BENCH_MODEL) \
	  --out=benchmarks/dreams_$(BENCH_SUFFIX).json
	$(BIN)/python -m benchmarks.plan --workdir=$(BENCH_MODEL) \
	  --out=benchmarks/plan_$(BENCH_SUFFIX).json
	$(BIN)/python -m benchmarks.serve --workdir=$(BENCH_MODEL) \
	  --out=benchmarks/serve_$(BENCH_SUFFIX).json

benchmark-tables: $(STAMP)
	$(BIN)/python -m benchmarks.tables

clean:
	rm -rf $(VENV) workdir

# Meta-World through the Gymnasium client, in its own venv (docs/benchmarks/metaworld.md).
# MW_SIZE=tiny is the 7-minute smoke test; runlocal about 2.5 hours on an idle 2-core CPU
# (300 held-out scenes per model: two blocks of seeds).
MW_SIZE ?= runlocal
metaworld: $(STAMP)
	$(BIN)/python -m experiments.metaworld --workdir=workdir/metaworld-$(MW_SIZE) --size=$(MW_SIZE)
