# kitex-etcd-operator: every entry point a person or CI needs.
# `make test` and `make demo` set up everything on a fresh machine.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

.PHONY: help deps venv tools test unit lint typecheck architecture cluster-up cluster-down demo bench bench-large clean soak \
	lock image image-tools

help:
	@echo "make demo          run the operator on a local demo cluster (first run builds Kubernetes: ~15 min)"
	@echo "make test          set up everything and run the whole test suite"
	@echo "make unit          only the tests that need no cluster"
	@echo "make lint typecheck"
	@echo "make image         build the operator's image with buildah (no Docker needed)"
	@echo "make lock          re-lock the image's dependencies (requirements/*.lock)"
	@echo "make cluster-up    start the local cluster in the background; make cluster-down stops it"
	@echo "make bench         benchmarks (prints figures, writes docs/benchmarks.md)"
	@echo "make bench-large   the 100,000-pod benchmark (~50 min; its section of docs/benchmarks.md)"
	@echo "make soak          randomized fault soak, 30 min (SOAK_SECONDS=, SOAK_SEED=)"

# The operator (editable, with the test tools) and the development package
# devtools/ (kitex-devcluster: the local cluster), which is not shipped.
$(STAMP): pyproject.toml devtools/pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' -e ./devtools
	touch $@

venv: $(STAMP)

# Go builds of etcd, Kubernetes, kwok, helm, actionlint and the Kitex interop
# programs, cached under ~/.cache/kitex-etcd-operator/<name>-<version>/; buildah
# and debootstrap (Debian packages) and the image's local Debian base, cached
# there too (the image test builds on it).
tools: $(STAMP) image-tools
	@echo "Go builds of etcd, Kubernetes, kwok, helm, actionlint: the first run takes ~20 min on 2 cores, then they are cached"
	$(BIN)/kitex-devcluster build
	$(BIN)/python tests/interop/programs.py build
	scripts/build-image.sh base

deps: venv tools

lint: venv
	$(BIN)/ruff check operator devtools tests benchmarks scripts
	$(BIN)/lint-imports

# The layer diagram of docs/architecture.md, from pyproject's import-linter
# layers and the real imports (a unit test fails when it is out of date).
architecture: venv
	$(BIN)/python scripts/architecture.py

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q tests/unit

test: deps lint typecheck
	$(BIN)/pytest -q -ra tests

cluster-up: deps
	$(BIN)/kitex-devcluster up --background

cluster-down: venv
	$(BIN)/kitex-devcluster down

demo: deps
	$(BIN)/kitex-devcluster demo

bench: deps
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m benchmarks

# 10,000 then 100,000 pods over 1,000 services, the Go yardstick list, churn at
# 100,000 and etcd under one big lease: ~40 min on 2 cores, most of it making
# the pods. Its own section of docs/benchmarks.md; make bench keeps the rest.
bench-large: deps
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m benchmarks --large

# The image's dependencies, pinned with hashes (pip install --require-hashes in
# the Dockerfile). Run after changing pyproject's dependencies; a test checks
# that the lock still satisfies them.
UV_COMPILE = $(BIN)/uv pip compile --generate-hashes --universal --python-version 3.11 \
	--quiet --custom-compile-command "make lock"
lock: venv
	$(BIN)/pip install -q 'uv>=0.5,<1'
	$(UV_COMPILE) pyproject.toml -o requirements/image.lock
	$(UV_COMPILE) requirements/build.in -o requirements/build.lock

# buildah and debootstrap (Debian packages), then the image, with buildah:
# no Docker daemon. IMAGE=... names it, IMAGE_BASE=local|pinned|auto|<ref>
# picks the base (see scripts/build-image.sh).
image-tools:
	scripts/image-tools.sh

image:
	scripts/build-image.sh

clean:
	rm -rf $(VENV) build *.egg-info operator/*.egg-info devtools/*.egg-info

# The randomized fault soak (tests/soak): 30 minutes by default, not part of `make test`
# (which runs the same test for 3 minutes). make soak SOAK_SECONDS=600 SOAK_SEED=7
SOAK_SECONDS ?= 1800
SOAK_SEED ?= 14
soak: deps
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_SEED=$(SOAK_SEED) \
		$(BIN)/pytest -q -s -ra tests/soak
