# newsbot — one entry point. `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test lint bench clean

setup: $(STAMP)

# torch first, pinned: the CPU wheel on local disk. An unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# The main job on the embedded defaults: index the built-in sample, then ask it something.
run: setup
	$(BIN)/newsbot index
	$(BIN)/newsbot status
	$(BIN)/newsbot ask "Chi è il nuovo amministratore delegato di General Motors?"

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check bot index tests bench
	$(BIN)/mypy bot index

bench: setup
	$(BIN)/python bench/index_bench.py
	$(BIN)/python bench/query_bench.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
