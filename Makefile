# Pipeline Pulse — every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev demo test bench clean

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

## The test suite (what CI runs).
test: $(STAMP)
	$(BIN)/python -m pytest

## Benchmarks print figures; they are not tests.
bench: $(STAMP)
	$(BIN)/python bench/bench_report.py

clean:
	rm -rf $(VENV) build *.egg-info bench/out
