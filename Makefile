# fxcrm: `make dev` runs everything locally, `make test` runs the whole suite.
SHELL := /bin/bash
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
PY := .venv/bin/python

.PHONY: install dev test lint format typecheck pytest benchmarks clean

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	@touch $@

tests/interop/node_modules/.installed: tests/interop/package.json tests/interop/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix tests/interop --no-audit --no-fund --silent && touch $@; \
	 else echo "npm not found: the third-party MT5 client interop test will fail"; fi

install: .venv/.synced $(if $(wildcard tests/interop/package.json),tests/interop/node_modules/.installed)

dev: install
	$(UV) run --frozen fxcrm dev

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

format: install
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

typecheck: install
	$(UV) run --frozen mypy fxcrm

pytest: install
	$(UV) run --frozen pytest -q

test: lint typecheck pytest

benchmarks: install
	$(UV) run --frozen python benchmarks/screening.py
	$(UV) run --frozen python benchmarks/onboarding.py
	$(UV) run --frozen python benchmarks/ingestion.py
	$(UV) run --frozen python benchmarks/sync_lag.py
	$(UV) run --frozen python benchmarks/read_path.py

clean:
	rm -rf var .venv $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
