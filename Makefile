# Querio: the two front-door commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test test-big venv lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned to the CPU build; an unpinned torch drags in several GB of CUDA wheels
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## run: set up, ingest the bundled sample PDFs, answer a sample question, then serve the API
run: $(STAMP)
	$(BIN)/querio ingest samples/
	$(BIN)/querio query "How do I give a LaTeX command an optional argument?"
	$(BIN)/querio serve --port $${PORT:-8000}

## test: set up and run the whole suite (unit, integration, e2e)
test: $(STAMP)
	$(BIN)/python -m pytest

## test-big: the 1,158-page Octave manual (Debian's octave-doc) through the ingest handler in page-range parts
test-big: $(STAMP)
	$(BIN)/python -m pytest -m big -s

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .querio .pytest_cache .mypy_cache .ruff_cache
