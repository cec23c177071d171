# pytest-canarygate: `make demo` shows a phase judged against the bundled simulator;
# `make test` runs lint, type checks and the whole test suite. Both install what they need.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ALLURE_DIR := .tools/allure
ALLURE := $(ALLURE_DIR)/node_modules/.bin/allure
ALLURE_VERSION := 3.18.0

.PHONY: install demo test lint typecheck unit html-tool test-floor clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

$(ALLURE):
	npm install --silent --no-audit --no-fund --prefix $(ALLURE_DIR) allure@$(ALLURE_VERSION)

html-tool: $(ALLURE)

DEMO_KEY := .demo-keys/signing.key
DEMO_PHASE := alpha
DEMO_RUNS := reports/agtmux-v4-to-v5/$(DEMO_PHASE)

$(DEMO_KEY): | $(STAMP)
	$(BIN)/canarygate keygen $(DEMO_KEY)

# Judge the healthy simulated fleet, then prove the bundle it wrote: verify it offline with
# only the public key, and render it as one HTML file.
demo: install html-tool $(DEMO_KEY)
	umask 022 && $(BIN)/pytest --phase=$(DEMO_PHASE) --canarygate-sim=healthy -n 2 -p no:cacheprovider \
		--canarygate-key=$(DEMO_KEY)
	@bundle=$$(ls -d $(DEMO_RUNS)/*/ | sort | tail -n 1); bundle=$${bundle%/}; \
	$(BIN)/canarygate verify "$$bundle" --key $(DEMO_KEY).pub.json && \
	$(BIN)/canarygate html "$$bundle" --key $(DEMO_KEY).pub.json && \
	echo "evidence bundle: $$bundle" && \
	echo "html report:     $$bundle.html"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# Evidence files must not be group- or world-writable (the trust rule); a checkout made under
# umask 002 would make the test data so.
unit: install html-tool
	chmod -R go-w tests/data
	umask 022 && $(BIN)/pytest -p no:canarygate -p no:cacheprovider -n 2 -W error::ResourceWarning -W error::pytest.PytestUnraisableExceptionWarning tests

test: lint typecheck unit

# The suite against the lowest dependency versions pyproject.toml declares (.ci/floor-pins.txt).
FLOOR_VENV := .venv-floor
test-floor: html-tool
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR_VENV)/bin/python -m pip install --quiet -r .ci/floor-pins.txt
	$(FLOOR_VENV)/bin/python -m pip install --quiet --no-deps -e .
	chmod -R go-w tests/data
	umask 022 && $(FLOOR_VENV)/bin/pytest -p no:canarygate -p no:cacheprovider -n 2 -W error::ResourceWarning -W error::pytest.PytestUnraisableExceptionWarning tests

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .tools .demo-keys .mypy_cache .ruff_cache
