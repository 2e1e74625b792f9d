# Two entry points: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= examples/mixed-sequential-parallel.yaml

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stepflow run $(DEMO) --timeline

test: $(STAMP)
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check operator tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/plan_scale.py
	$(BIN)/python benchmarks/local_overhead.py
	$(BIN)/python benchmarks/operator_latency.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
