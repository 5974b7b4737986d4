# Cible — two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: demo test services lint format bench install dev clean-var screenshots journeys

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet ".[dev]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/python manage.py run_demo

lint: dev
	$(BIN)/ruff check .

format: dev
	$(BIN)/ruff format .

# The servers the tests start (redis-server, PostgreSQL's initdb/pg_ctl) and the browser of the
# journey tests (chromium): installed from Debian packages when missing and run as root (as in
# CI); otherwise named, with the command that installs them, and their tests skip with the reason.
services:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing$$missing from Debian packages…"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "make test: missing$$missing — install with: sudo apt-get install$$missing"; \
	    echo "  (or run make test as root); until then the tests that need them are skipped."; \
	  fi; \
	fi

# SQLite pass (everything not marked postgres), then the PostgreSQL pass against a throwaway
# server that the test session starts itself. REQUIRE_SERVICES=1 turns missing servers into failures.
test: dev services
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not postgres"
	CIBLE_TEST_DATABASE=postgresql $(BIN)/python -m pytest -m postgres

# The journey tests alone (tests/e2e/: headless Chromium as each role, real workers), and the
# same journeys saving their key screens into docs/screenshots/ (docs/journeys.md).
journeys: dev
	$(BIN)/python -m pytest tests/e2e -m "e2e and not postgres" -q

screenshots: dev
	CIBLE_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/e2e -m "e2e and not postgres" -q

# The sending benchmark delivers to Postfix's smtp-sink (a C SMTP test server) when it can install
# it; otherwise to an aiosmtpd server, whose own ceiling then caps the delivery figure.
bench: dev
	@command -v smtp-sink >/dev/null 2>&1 || test -x /usr/sbin/smtp-sink || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    echo "Installing Postfix's smtp-sink (Debian package postfix) for the sending benchmark…" && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null 2>&1 || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null; }; } || \
	  echo "smtp-sink not installed: the sending benchmark uses aiosmtpd"
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean-var:
	rm -rf var/
