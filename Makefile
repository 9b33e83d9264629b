# Two entry points: `make run` (the app on durablehost + Azurite) and `make test`.
# Both install what they need: a venv in .venv/ and Azurite in node_modules/.
SHELL := /bin/bash
# The venv's interpreter: the fastest CPython >= 3.11 here (the build matters by ~20%;
# see scripts/pick_python.py). `make PYTHON=...` chooses another.
PYTHON ?= $(shell python3 scripts/pick_python.py || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install browser run test lint typecheck check bench clean

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: install
	./scripts/run-local.sh

# The dashboard's browser tests drive Debian's chromium (Playwright never downloads one):
# installed here when missing and we may (root with apt-get); elsewhere those tests skip.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium is not installed: the dashboard's browser tests will skip"

test: install browser
	$(PY) -m pytest

lint: $(PY_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(PY_STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(PY_STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: install $(BENCH_STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules .durablehost .azurite .pytest_cache .mypy_cache .ruff_cache
