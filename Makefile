# The two commands of the README, plus the checks we run before committing.
# Everything installs itself into .venv on first use (a fresh machine needs only Python 3.11).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/.installed  ## replay synthetic ML-API traffic with injected incidents
	$(BIN)/watcher demo

test: $(BIN)/.installed  ## lint, type-check and run the test suite
	$(BIN)/ruff check watcher tests bench
	$(BIN)/ruff format --check watcher tests bench
	$(BIN)/mypy watcher
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/python bench/bench_embedded_tick.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
