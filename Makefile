# redline: `make up` runs the native stack, `make test` proves it. Everything is installed by these
# targets: a virtualenv in .venv and the pinned binaries in .tools/bin (see tools/versions.yml).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REDLINE := $(BIN)/redline
PROMTOOL := .tools/bin/promtool
AMTOOL := .tools/bin/amtool
VMALERT := .tools/bin/vmalert
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test files run in this many processes (pytest-xdist, a file's tests stay in one process): the tiers
# with real binaries mostly wait for alert timers, so three share two cores well. 0: one process.
TEST_WORKERS ?= 3
PARALLEL = -n $(TEST_WORKERS) --dist loadfile --durations=15
# The conformance suite's real client libraries (tests/clients): pinned npm packages and Debian's Chromium.
CLIENTS_NODE := tests/clients/node
NODE_STAMP := $(CLIENTS_NODE)/node_modules/.redline-installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: help setup tools clients chromium up up-ha up-scale down status test test-unit test-integration test-e2e test-clients lint generate check bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

setup: $(STAMP) tools clients ## create .venv, fetch the pinned binaries, install the client libraries (idempotent, cached)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "redline needs Python >= 3.11 ($(PYTHON) is $$($(PYTHON) --version))"; exit 1; }
	@echo "==> creating $(VENV) and installing redline with its dependencies"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

tools: $(STAMP)
	@$(REDLINE) setup-tools

clients: $(NODE_STAMP) chromium

# npm ci from the committed lockfile (exact versions); again only when the lockfile changes.
$(NODE_STAMP): $(CLIENTS_NODE)/package.json $(CLIENTS_NODE)/package-lock.json
	@command -v npm >/dev/null || { echo "Node 20 and npm are needed for tests/clients: apt-get install nodejs npm"; exit 1; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' \
		|| { echo "tests/clients needs Node >= 20 (node is $$(node --version))"; exit 1; }
	@echo "==> npm ci in $(CLIENTS_NODE) (prom-client, OpenTelemetry JS, esbuild)"
	@cd $(CLIENTS_NODE) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

# Debian's chromium for the browser tests (Playwright drives it; no browser download of its own).
chromium:
	@test -x $(CHROMIUM) || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "==> apt-get install chromium"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "chromium is missing: run 'sudo apt-get install chromium' (or 'sudo make setup') once"; exit 1; \
		fi; }

up: setup ## start the native stack on 127.0.0.1 and print its status table
	@$(REDLINE) up

up-ha: setup ## the same, with a three-node Alertmanager cluster
	@$(REDLINE) up --ha

up-scale: setup ## the same, with an HA Prometheus pair writing into VictoriaMetrics (docs/scale.md)
	@$(REDLINE) up --scale

down: ## stop the native stack (data is kept in .run/)
	@if [ -x $(REDLINE) ]; then $(REDLINE) down; else echo "nothing to stop (no .venv)"; fi

status: ## show the native stack's services and URLs
	@$(REDLINE) status

generate: $(STAMP) ## render thresholds/ into rules, tests, runbooks, dashboards
	@$(REDLINE) generate

check: setup ## fail when generated files drift from the catalogue or their promtool tests fail; validate configs
	@$(REDLINE) check
	@$(PROMTOOL) check rules prometheus/rules/*.yml prometheus/long-term/rules.yml
	@$(VMALERT) -dryRun -loggerLevel=ERROR -rule=prometheus/long-term/rules.yml
	@$(AMTOOL) check-config alertmanager/alertmanager.yml

lint: $(STAMP) ## ruff and mypy
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

test: setup lint check ## lint, drift and config checks, then every test tier (unit, integration, e2e, clients)
	@$(BIN)/pytest -q $(PARALLEL) $(PYTEST_ARGS) tests/unit tests/integration tests/e2e tests/clients

test-unit: $(STAMP) ## the unit tier: no binary at all, seconds (catalogue, generator, OTLP, collectors on fixtures)
	@$(BIN)/pytest -q $(PYTEST_ARGS) tests/unit

test-integration: setup ## the integration tier: real promtool, Prometheus, Alertmanager, vmagent, PostgreSQL
	@$(BIN)/pytest -q $(PARALLEL) $(PYTEST_ARGS) tests/integration

test-e2e: setup ## the end-to-end tier: the whole native stack from `redline up`
	@$(BIN)/pytest -q $(PARALLEL) $(PYTEST_ARGS) tests/e2e

test-clients: setup ## the conformance suite: real client libraries (Node prom-client, OTel JS in Chromium) against the stack
	@$(BIN)/pytest -q $(PARALLEL) $(PYTEST_ARGS) tests/clients

BENCHMARKS := host_vs_node exporter_connections instrumentation alert_latency rollback scale catalogue_fuzz alertmanager_ha node_idle_heap backtest ledger console

bench: setup ## run the benchmarks in bench/ and print their figures (about 40 minutes)
	@for name in $(BENCHMARKS); do echo "==> bench/$$name.py"; $(BIN)/python bench/$$name.py || exit 1; done

clean: ## remove .venv, .tools and the run folder .run (stop the stack first)
	@if [ -x $(REDLINE) ]; then $(REDLINE) down >/dev/null; fi
	rm -rf $(VENV) .tools .run .mypy_cache .ruff_cache .pytest_cache *.egg-info $(CLIENTS_NODE)/node_modules
