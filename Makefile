# Two entry points: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= examples/mixed-sequential-parallel.yaml

.PHONY: demo test chaos lint bench clean kube-assets cluster ui-assets crds

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stepflow run $(DEMO) --timeline

# The real control plane tier's binaries, built from Go modules once per machine (tests/kube/).
kube-assets: $(STAMP)
	$(BIN)/python tests/kube/build.py >/dev/null

test: $(STAMP) kube-assets
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/pytest -q

# Faults and a soak on the real control plane, with two leader-elected replicas (README,
# Reliability). About 10 minutes; CI runs it after `make test`.
chaos: $(STAMP) kube-assets
	$(BIN)/pytest -q -m chaos tests/kube/test_chaos.py

# A real API server on loopback with deploy/ installed, for trying stepflow by hand.
cluster: $(STAMP) kube-assets
	cd tests && ../$(BIN)/python -m kube.controlplane

# deploy/crds/ from operator/stepflow/fields.py; tests/test_crd.py fails until it is rerun.
crds: $(STAMP)
	$(BIN)/python -m stepflow.crd

lint: $(STAMP)
	$(BIN)/ruff check operator tests benchmarks

bench: $(STAMP) kube-assets
	$(BIN)/python benchmarks/plan_scale.py
	$(BIN)/python benchmarks/local_overhead.py
	$(BIN)/python benchmarks/local_chain.py
	$(BIN)/python benchmarks/operator_latency.py
	$(BIN)/python benchmarks/ui_render.py

# The web UI's one third-party asset (elkjs, pinned in ui/package.json), copied from npm into
# the package; only needed after changing that pin. The UI itself needs no Node.js.
ui-assets:
	ui/vendor.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
