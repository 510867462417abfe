# Every target creates the virtual environment and installs into it when needed,
# so each one works as the first command on a fresh machine.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?= -n 4
# A second environment with the gateway's hot path compiled by mypyc (hatch_build.py, issue 9).
CVENV   ?= .venv-compiled
CPY     := $(CVENV)/bin/python
CSTAMP  := $(CVENV)/.installed
# The tests that drive the compiled modules: the gateway's own, and the daemon that runs it.
COMPILED_TESTS ?= tests/unit tests/integration/test_gateway_*.py \
	tests/integration/test_daemon_httpd.py tests/integration/test_tcp_route.py

.PHONY: run up test check lint fmt types bench clean compiled test-compiled

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

# Not an editable install: an extension module in src/ would shadow later edits of its .py.
# So every source file is a prerequisite: the whole package is a copy, not only the compiled part.
$(CSTAMP): pyproject.toml hatch_build.py $(shell find src/homeport -name "*.py")
	@test -x $(CPY) || python3 -m venv $(CVENV)
	@$(CPY) -m pip install -q --disable-pip-version-check '.[dev]'
	@HOMEPORT_COMPILE=mypyc $(CPY) -m pip install -q --disable-pip-version-check \
		--force-reinstall --no-deps .
	@$(CPY) -c 'import sys, homeport.gateway.proxy as p; \
		sys.exit(None if p.__file__.endswith(".so") else "mypyc build failed: " + p.__file__)'
	@touch $@

compiled: $(CSTAMP)    ## the gateway's hot path compiled with mypyc, in .venv-compiled
	@echo "compiled: $(CVENV)/bin/homeport"

test-compiled: $(CSTAMP) ## the gateway's tests against the compiled build
	$(CPY) -m pytest $(PYTEST_ARGS) $(COMPILED_TESTS)

clean:
	rm -rf $(VENV) $(CVENV) build dist .mypy_cache .ruff_cache
