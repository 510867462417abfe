# Every target creates the virtual environment and installs into it when needed,
# so each one works as the first command on a fresh machine.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?= -n 4

.PHONY: run up test check lint fmt types bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

run: $(STAMP)          ## what listens here and needs attention, then the gateway + dashboard
	@$(VENV)/bin/homeport
	@echo
	@exec $(VENV)/bin/homeport up

test: $(STAMP)         ## the test suite (unit, integration, cli, browser)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench

types: $(STAMP)
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

check: lint types test ## what CI runs: format, lint, types, tests

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
