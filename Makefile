# make run   : create .venv if missing, install, launch the examples gallery
# make test  : create/refresh .venv, install, ruff, the import contract, pytest
# make fuzz  : every crafted file of tests/fuzz at full size, through the command line
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench soak fuzz system-deps clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/netexplorer $(ARGS)

# Xvfb and the xcb libraries Qt needs for the end-to-end test (apt-get, when root and missing).
system-deps:
	bash .ci/system-deps

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: $(STAMP) system-deps lint
	QT_QPA_PLATFORM=offscreen NETEXPLORER_E2E=required $(BIN)/python -m pytest -q

# Minutes: builds GB-sized files (a 3 GB zip bomb, a million tensors) in a temporary folder
fuzz: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python tests/fuzz/run_fuzz.py $(ARGS)

MINUTES ?= 10
# soak: train the tied example with the window live for MINUTES, watch memory and stalls
soak: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/soak.py --minutes $(MINUTES)

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,bench]'
	touch $(BENCH_STAMP)

# bench: every benchmark under bench/, then one table (figure, floor or peer, ratio, target);
# BENCH_ARGS=--quick for a short smoke run, --only graph state for some of them
bench: $(BENCH_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
