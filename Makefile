# PushOps developer tasks. `make run` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint types bench install lock clean

# constraints.txt pins every package, so what CI tests is what the image ships.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt --upgrade pip setuptools
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,postgres]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/pushops serve

# Four workers on two cores: most tests wait on sockets, timers and databases, not the CPU.
TEST_WORKERS ?= 4

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

types: $(STAMP)
	$(BIN)/mypy

check: lint types test

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,postgres,bench]'
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

# New pins: what installs today in a fresh environment, unconstrained (keeps the header comment).
LOCK_VENV := build/lock-venv
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools
	$(LOCK_VENV)/bin/python -m pip install --quiet '.[dev,postgres,bench]'
	{ sed -n '/^#/p' constraints.txt; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude pushops; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
