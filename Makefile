# pytest-canarygate: `make demo` shows a phase judged against the bundled simulator;
# `make test` runs lint, type checks and the whole test suite. Both install what they need.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ALLURE_DIR := .tools/allure
ALLURE := $(ALLURE_DIR)/node_modules/.bin/allure
ALLURE_VERSION := 3

.PHONY: install demo test lint typecheck unit html-tool clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

$(ALLURE):
	npm install --silent --no-audit --no-fund --prefix $(ALLURE_DIR) allure@$(ALLURE_VERSION)

html-tool: $(ALLURE)

demo: install
	$(BIN)/pytest --phase=alpha --sim=healthy -p no:cacheprovider

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install html-tool
	$(BIN)/pytest -p no:canarygate -p no:cacheprovider -n 2 tests

test: lint typecheck unit

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache
