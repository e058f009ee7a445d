# The README's commands. Each creates and fills its own virtual environment when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint typecheck unit demo bench bench-bugs bench-alarms clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: lint typecheck unit

# The Node client stacks of the conformance matrix (tests/interop), from the lock file.
NODE_DIR := tests/interop/node
NODE_DEPS := $(NODE_DIR)/node_modules/.installed
$(NODE_DEPS): $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy jitchaos strategies tests bench examples

# Two workers or more (pytest-xdist): the stateful and end-to-end tests are most of the time.
unit: $(BIN)/.installed $(NODE_DEPS)
	$(BIN)/pytest -n auto

# The embedded IdP, the proxy and a known-bug service: the bug found, its notebook written
# into .jitchaos/notebooks/ (ignored by git), then the fixed
# service cleared. NAME=... picks another (jitchaos demo --list).
demo: $(BIN)/.installed
	$(BIN)/python -m jitchaos demo $(NAME)

# mitmproxy lives in its own environment: it pins versions of what jitchaos also uses.
MITM := bench/.venv-mitm
$(MITM)/bin/mitmdump:
	$(PYTHON) -m venv $(MITM)
	$(MITM)/bin/python -m pip install --quiet mitmproxy 'pyjwt[crypto]'

bench: $(BIN)/.installed $(MITM)/bin/mitmdump
	$(BIN)/python bench/strategies.py
	$(BIN)/python bench/proxy_overhead.py --mitmdump $(MITM)/bin/mitmdump

# How fast the machines find each known bug, against a naive injector (20 seeds: long).
bench-bugs: $(BIN)/.installed
	$(BIN)/python bench/time_to_bug.py $(ARGS)

# Every correct twin under its machine, many random examples over several seeds: any
# violation is a false alarm (exit 1).
bench-alarms: $(BIN)/.installed
	$(BIN)/python bench/false_alarms.py $(ARGS)

clean:
	rm -rf $(VENV) $(MITM) $(NODE_DIR)/node_modules dist build .pytest_cache .mypy_cache .ruff_cache .hypothesis
