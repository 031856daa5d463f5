# Customer data platform: the README's two commands are `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup run up demo test test-unit test-integration lint fmt bench schemas lock clean prometheus

help: ## Show this help
	@echo "Customer data platform - make targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo ""
	@echo "Start here: 'make run' (platform + demo traffic), 'make test' (whole suite)."

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11 or run 'make PY=/path/to/python3.11 ...'"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the pinned dependencies (run by the other targets when needed)

APT_PROMETHEUS := DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends prometheus
prometheus: ## Install Prometheus and promtool (Debian package) when missing: the metrics tests run both
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "installing Prometheus (Debian package 'prometheus') for the metrics and alert tests"; \
	  $(APT_PROMETHEUS) || { $$sudo apt-get update && $(APT_PROMETHEUS); } || { \
	    echo "error: the tests need 'promtool' and 'prometheus' on PATH and they could not be installed:"; \
	    echo "  install the Debian/Ubuntu package as root: apt-get install prometheus (or put both binaries on PATH)"; \
	    exit 1; }; }

run: $(STAMP) ## Start the single-node platform and stream demo traffic through it (Ctrl-C stops)
	$(BIN)/cdp up --demo $(ARGS)

up: $(STAMP) ## Start the single-node platform without demo traffic
	$(BIN)/cdp up $(ARGS)

demo: $(STAMP) ## Send demo traffic to a running platform (ARGS="--customers 500 --days 90")
	$(BIN)/cdp demo $(ARGS)

test: $(STAMP) prometheus ## Run the whole test suite against a real broker and warehouse
	$(BIN)/python -m pytest $(ARGS)

test-unit: $(STAMP) prometheus ## Run only the unit tests (no sockets; promtool checks the deploy files)
	$(BIN)/python -m pytest tests/unit $(ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## Run every benchmark (~25 min): table, bench-results.json, README table (ARGS=--quick: smoke run)
	$(BIN)/python -m tests.bench $(ARGS)
	$(BIN)/python -m tests.bench.readme

schemas: $(STAMP) ## Re-export the JSON Schemas in schemas/json from the pydantic models
	$(BIN)/python -m schemas.export

lock: ## Re-resolve dependencies and rewrite requirements.lock (maintainers)
	rm -rf .lock-venv && $(PY) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .lock-venv

clean: ## Remove the virtualenv and local data (.cdp-data)
	rm -rf $(VENV) .cdp-data .pytest_cache .mypy_cache .ruff_cache
