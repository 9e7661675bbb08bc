# The two commands: `make run` (set up, then start the gateway with its sandbox) and `make test`.
SHELL := /bin/bash
# The first Python >= 3.11 on PATH.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUF := node_modules/.bin/buf

.PHONY: run test lint protos install clean

run: $(STAMP)
	$(BIN)/itsm-gateway dev

test: $(STAMP) $(BUF)
	$(BIN)/ruff check .
	$(BUF) lint
	$(BIN)/python scripts/gen_protos.py --check
	@if command -v promtool >/dev/null; then promtool check rules deploy/prometheus/alerts.yml \
		&& promtool test rules deploy/prometheus/alerts_test.yml; \
	else echo "promtool not installed: skipping alert rule checks and unit tests (CI installs it)"; fi
	$(BIN)/pytest -q

lint: $(STAMP) $(BUF)
	$(BIN)/ruff check .
	$(BUF) lint

# Regenerate gen/itsm/v1 after editing protos/.
protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

clean:
	rm -rf $(VENV) node_modules var .pytest_cache .ruff_cache
