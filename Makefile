# Two entry points: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= examples/mixed-sequential-parallel.yaml
FIGURES := docs/figures
# mkdocs-material prints a banner about its successor on every build; the build itself is unaffected.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

.PHONY: demo test chaos lint docs docs-serve browser bench peers clean kube-assets cluster ui-assets crds \
	image image-test image-clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stepflow run $(DEMO) --timeline

# Debian's Chromium for the browser tests: installed where this user may (root, or sudo without
# a password); otherwise this stops at once and names the command to run.
browser:
	@scripts/ensure-chromium

# The real control plane tier's binaries, built from Go modules once per machine (tests/kube/).
kube-assets: $(STAMP)
	$(BIN)/python tests/kube/build.py >/dev/null

# `browser` first: a missing prerequisite stops the run before the long build.
test: browser $(STAMP) kube-assets
	$(BIN)/ruff check operator tests benchmarks docs
	$(MKDOCS) build --strict
	$(BIN)/pytest -q

# Faults and a soak on the real control plane, with two leader-elected replicas (docs/reliability.md).
# About 10 minutes; CI runs it after `make test`. Writes the reliability page's table.
chaos: $(STAMP) kube-assets
	STEPFLOW_CHAOS_MARKDOWN=$(FIGURES)/reliability.md $(BIN)/pytest -q -m chaos tests/kube/test_chaos.py

# The operator image, built from the Dockerfile by buildah without a daemon (scripts/image.py).
# IMAGE_BASE=standin: a Debian stand-in for the FROM image, for machines that reach no container
# registry (bootstrapped once per machine); IMAGE_BASE=registry: the real base, pulled.
IMAGE_BASE ?= standin
IMAGE ?= localhost/stepflow-operator:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	@scripts/ensure-buildah
	$(PYTHON) scripts/image.py build --base $(IMAGE_BASE) --tag $(IMAGE)

# The built image is the operator: it runs a workflow on the real control plane (tests/kube/test_image.py).
image-test: $(STAMP) kube-assets image
	STEPFLOW_IMAGE=$(IMAGE) STEPFLOW_IMAGE_BASE=$(IMAGE_BASE) $(BIN)/pytest -q -m image tests/kube/test_image.py

# Drops the image storage of scripts/image.py (the stand-in base included).
image-clean:
	$(PYTHON) scripts/image.py buildah --base $(IMAGE_BASE) rmi --all --force

# A real API server on loopback with deploy/ installed, for trying stepflow by hand.
cluster: $(STAMP) kube-assets
	cd tests && ../$(BIN)/python -m kube.controlplane

# deploy/crds/ from operator/stepflow/fields.py; tests/test_crd.py fails until it is rerun.
crds: $(STAMP)
	$(BIN)/python -m stepflow.crd

lint: $(STAMP)
	$(BIN)/ruff check operator tests benchmarks docs

# The docs site (mkdocs.yml), into site/; --strict: a broken link or anchor fails the build.
docs: $(STAMP)
	$(MKDOCS) build --strict

docs-serve: $(STAMP)
	$(MKDOCS) serve

# Argo Workflows' and Tekton Pipelines' controllers, built from Go modules once per machine
# (tests/kube/peers.py): for benchmarks/peers.py only, so neither `test` nor `kube-assets` builds them.
peers: $(STAMP) kube-assets
	$(BIN)/python benchmarks/peers.py --build-only >/dev/null

# Every benchmark, each writing its table into the performance page's figures (docs/figures/).
bench: $(STAMP) kube-assets peers browser
	$(BIN)/python benchmarks/plan_scale.py --markdown $(FIGURES)/plan_scale.md
	$(BIN)/python benchmarks/local_overhead.py --markdown $(FIGURES)/local_overhead.md
	$(BIN)/python benchmarks/local_chain.py --markdown $(FIGURES)/local_chain.md
	$(BIN)/python benchmarks/operator_latency.py --scenarios latency,throughput,pools,memory \
		--markdown $(FIGURES)/operator_latency.md
	$(BIN)/python benchmarks/operator_latency.py --variants tuned --scenarios types \
		--markdown $(FIGURES)/operator_latency_types.md
	$(BIN)/python benchmarks/fan_out.py --markdown $(FIGURES)/fan_out.md
	$(BIN)/python benchmarks/ui_render.py --markdown $(FIGURES)/ui_render.md
	$(BIN)/python benchmarks/status_write.py --profile --markdown $(FIGURES)/status_write.md
	mkdir -p build
	$(BIN)/python benchmarks/operator_latency.py --variants tuned --scenarios throughput \
		--profile build/operator-profile.txt
	$(BIN)/python benchmarks/profile_summary.py build/operator-profile.txt \
		--markdown $(FIGURES)/operator_profile.md
	$(BIN)/python benchmarks/peers.py --markdown $(FIGURES)/peers.md

# The web UI's one third-party asset (elkjs, pinned in ui/package.json), copied from npm into
# the package; only needed after changing that pin. The UI itself needs no Node.js.
ui-assets:
	ui/vendor.sh

clean:
	rm -rf $(VENV) .pytest_cache build site *.egg-info
