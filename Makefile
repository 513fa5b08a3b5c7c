# Pagemill — every command of the project. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help:  ## List the commands
	@grep -hE '^[a-z][a-z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.stamp-venv:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python venv missing: installing python3-venv"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else sudo -n apt-get update -qq && sudo -n apt-get install -y -qq python3-venv; fi; \
	  $(PYTHON) -m venv $(VENV); }
	@touch $@

# Runtime packages only (requirements.lock): what `make up` needs. Tests and tools come on top (.stamp-dev).
$(VENV)/.stamp-install: $(VENV)/.stamp-venv requirements.lock pyproject.toml
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	@touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-install requirements-dev.lock
	$(PIP) install -q -r requirements-dev.lock
	@touch $@

system-deps:  ## Install the Debian packages (Tesseract; Postgres and Redis for tests)
	bash scripts/install-system-deps.sh

install: $(VENV)/.stamp-install  ## Create .venv with the pinned runtime packages (and .venv/bin/pagemill)
	@bash scripts/install-system-deps.sh --runtime-only

install-dev: $(VENV)/.stamp-dev  ## Add the pinned test and development tools to .venv

up: install  ## Run API + worker on embedded defaults (SQLite, local folder, embedded broker)
	$(PY) -m pagemill up

api: install  ## Run only the API (distributed mode; settings from PAGEMILL_*)
	$(PY) -m pagemill api

worker: install  ## Run only a worker (distributed mode)
	$(PY) -m pagemill worker --queues ingest,cpu

migrate: install  ## Apply database migrations
	$(PY) -m pagemill migrate

test: $(VENV)/.stamp-dev system-deps tus-js promtool  ## Install everything and run the whole test suite
	$(PY) -m pytest -n 2 --dist loadfile --durations=25 $(PYTEST_ARGS)

# tus-js-client (npm, pinned by its package-lock.json) for the tus tests, which run it with node (system-deps
# installs Debian's nodejs and npm).
tus-js:  ## Install tus-js-client for the tus tests (npm ci in tests/support/tus_js)
	@command -v npm >/dev/null 2>&1 || { echo "npm missing: run make system-deps (Debian nodejs, npm)"; exit 1; }
	cd tests/support/tus_js && npm ci --no-audit --no-fund --loglevel=error

# promtool (Prometheus's rule checker and unit-test runner) for the alert-rule tests, taken out of Debian's
# prometheus package into .venv/bin without installing that package (which would start a Prometheus server).
promtool: install-dev  ## Put promtool into .venv/bin for the alert-rule tests
	bash scripts/install-promtool.sh $(VENV)

test-unit: install-dev  ## Only the unit tests (no services)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# Renders deploy/kustomize (kubectl, from `make system-deps`) and the Helm chart (helm-python-sdk) offline and
# checks them against the Kubernetes and KEDA schemas, each other, and the metric names (docs/deployment.md).
deploy-check: install-dev promtool  ## Validate deploy/: kustomize, Helm chart, alert rules, dashboard (no cluster)
	$(PY) -m pytest tests/unit/deploy $(PYTEST_ARGS)

lint: install-dev  ## ruff lint + format check, mypy strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install-dev  ## Format and fix what ruff can
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install-dev system-deps  ## Run the benchmarks and record them in docs/benchmarks.md
	$(PY) -m bench

office-peers:  ## Put docling's office backends in .venv-peers (no torch, no models) for the office benchmark
	bash scripts/install-office-peers.sh .venv-peers

bench-office: install-dev office-peers  ## Office quality and speed against markitdown and docling
	$(PY) -m bench office_quality

lock: $(VENV)/.stamp-venv  ## Re-pin requirements.lock (runtime) and requirements-dev.lock from pyproject.toml (UPGRADE=1: newest)
	$(PY) scripts/lock_requirements.py $(if $(UPGRADE),--upgrade)

clean:  ## Remove the venv, caches and the embedded data folder
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache pagemill-data

.PHONY: help system-deps install install-dev up api worker migrate test tus-js promtool test-unit deploy-check lint format bench office-peers bench-office lock clean
