# Querio: the two front-door commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# jsii (aws-cdk-lib) warns about Node 20's end of life on every process; Node 20 still works
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# the CDK CLI phones home for notices and telemetry; synth must stay offline
export CDK_DISABLE_CLI_TELEMETRY := true
TIER ?= small

.PHONY: run test test-big synth cost venv lint clean bench bench-quick

# torch is pinned to the CPU build in pyproject.toml; an unpinned torch drags in several GB of CUDA wheels
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## run: set up, ingest the bundled sample PDFs, answer a sample question, then serve the API
run: $(STAMP)
	$(BIN)/querio ingest samples/
	$(BIN)/querio query "How do I give a LaTeX command an optional argument?"
	$(BIN)/querio serve --port $${PORT:-8000}

## test: set up and run the whole suite (unit, integration, conformance, infrastructure, e2e)
test: $(STAMP)
	$(BIN)/python -m pytest

## test-big: the 1,158-page Octave manual (Debian's octave-doc) through the ingest handler in page-range parts
test-big: $(STAMP)
	$(BIN)/python -m pytest -m big -s

## bench: every benchmark beside the seed baseline (BENCH_ARGS=--with-1m adds 1M vectors); bench/README.md
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## bench-quick: the same in a few minutes (10K vectors only, fewer queries, 10 s per load level)
bench-quick: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

## synth: the real CDK CLI (pinned in package.json) bundles the Lambda assets locally (no Docker),
## synthesizes TIER (small|mid|enterprise), lints the templates with cfn-lint and checks asset sizes
synth: $(STAMP) node_modules/.package-lock.json
	npx --no-install cdk synth --context tier=$(TIER) --quiet
	$(BIN)/cfn-lint --non-zero-exit-code error --ignore-checks=W3005 -- cdk.out/*.template.json
	$(BIN)/python -m stacks.asset_sizes cdk.out

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

## cost: the monthly estimate of TIER from the tier table and the seed's prices
cost: $(STAMP)
	$(BIN)/querio cost --tier $(TIER)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .querio .pytest_cache .mypy_cache .ruff_cache cdk.out node_modules
