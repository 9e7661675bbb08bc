# The two commands: `make run` (set up, then start the gateway with its sandbox) and `make test`.
SHELL := /bin/bash
# The first Python >= 3.11 on PATH.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The browser test's packages (the `browser` extra): make test installs them, make run does not.
BROWSER_STAMP := $(VENV)/.installed-browser
BUF := node_modules/.bin/buf
# The page's toolchain (web/package-lock.json); npm ci writes this file last.
WEB_MODULES := web/node_modules/.package-lock.json

.PHONY: run test lint protos web install clean

run: $(STAMP)
	$(BIN)/itsm-gateway dev

test: $(STAMP) $(BROWSER_STAMP) $(BUF) $(WEB_MODULES)
	$(BIN)/ruff check .
	$(BUF) lint
	$(BIN)/python scripts/gen_protos.py --check
	$(BIN)/python scripts/build_web.py --check
	@if command -v promtool >/dev/null; then promtool check rules deploy/prometheus/alerts.yml \
		&& promtool test rules deploy/prometheus/alerts_test.yml; \
	else echo "promtool not installed: skipping alert rule checks and unit tests (CI installs it)"; fi
	$(BIN)/pytest -q

lint: $(STAMP) $(BUF)
	$(BIN)/ruff check .
	$(BUF) lint

# Regenerate gen/itsm/v1 and the page's stubs (and the page) after editing protos/.
protos: $(STAMP) $(BUF) $(WEB_MODULES)
	$(BIN)/python scripts/gen_protos.py
	$(BIN)/python scripts/build_web.py

# Rebuild web/built (committed) after editing web/.
web: $(STAMP) $(BUF) $(WEB_MODULES)
	$(BIN)/python scripts/build_web.py

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

$(BROWSER_STAMP): $(STAMP)
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,browser]'
	@touch $@

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_MODULES): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

clean:
	rm -rf $(VENV) node_modules web/node_modules var .pytest_cache .ruff_cache
