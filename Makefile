# Pipeline Pulse — every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev demo test tools tools-browser bench bench-worker clean

$(STAMP): pyproject.toml
	@echo "installing Pipeline Pulse into $(VENV) ..." >&2
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip >&2
	@$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]' >&2
	@touch $(STAMP)

## The main job on the embedded default: broker, worker, demo traffic and alerts, all local.
dev: $(STAMP)
	@$(BIN)/pulse dev

## The offline report of the bundled sample events.
demo: $(STAMP)
	@$(BIN)/pulse report $$($(BIN)/python -c "import importlib.resources as r; print(r.files('pulse') / 'samples' / 'demo.jsonl')")

## Prometheus tools for the metrics and alert-rule tests (Debian package; needs root).
PROMTOOL := $(shell command -v promtool 2>/dev/null)
tools: tools-browser
ifeq ($(PROMTOOL),)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing prometheus (promtool) with apt-get ..." >&2; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) >&2; \
	else echo "note: promtool/prometheus missing and not root: those tests will be skipped" >&2; fi
endif

## Chromium for the dashboard's browser tests (Debian package; needs root). Playwright drives it.
CHROMIUM := $(shell command -v chromium 2>/dev/null)
tools-browser:
ifeq ($(CHROMIUM),)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium with apt-get ..." >&2; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) >&2; \
	else echo "note: chromium missing and not root: the dashboard's browser tests will be skipped" >&2; fi
endif

## The test suite (what CI runs).
test: $(STAMP) tools
	$(BIN)/python -m pytest

## Benchmarks print figures; they are not tests.
bench: $(STAMP)
	$(BIN)/python bench/bench_report.py

## The worker against raw aiokafka, Faust and Quix Streams (the `bench` extra), 1/2/4 workers.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	@$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,bench]' >&2
	@touch $(BENCH_STAMP)
bench-worker: $(BENCH_STAMP)
	$(BIN)/python bench/bench_worker.py --workers 1,2,4 --poll offsets $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info bench/out
	-git worktree prune
