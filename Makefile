# Every target creates the virtual environment and installs into it when needed,
# so each one works as the first command on a fresh machine.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?= -n 4
# The install as users get it: `pip install .`, which compiles the gateway's hot path with mypyc
# where a C compiler and Python's headers are, and is pure Python elsewhere (hatch_build.py,
# issue 9). `make run` starts it and bench/bench_gateway.py measures it; .venv is the editable
# (pure) install the tests and the tools run from.
CVENV   ?= .venv-compiled
CPY     := $(CVENV)/bin/python
CSTAMP  := $(CVENV)/.installed
# The tests that drive the compiled modules: the gateway's own, and the daemon that runs it.
COMPILED_TESTS ?= tests/unit tests/integration/test_gateway_*.py \
	tests/integration/test_daemon_httpd.py tests/integration/test_tcp_route.py

.PHONY: run up test check lint fmt types bench clean compiled test-compiled

# Editable installs are never compiled: HOMEPORT_COMPILE=pure spares the build its mypy.
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@HOMEPORT_COMPILE=pure $(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

run: $(CSTAMP)         ## what listens here and needs attention, then the gateway + dashboard
	@$(CVENV)/bin/homeport
	@echo
	@exec $(CVENV)/bin/homeport up

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
# The dependencies first (homeport pure, quickly), then homeport itself, compiled (~40 s).
$(CSTAMP): pyproject.toml hatch_build.py $(shell find src/homeport -name "*.py")
	@test -x $(CPY) || python3 -m venv $(CVENV)
	@HOMEPORT_COMPILE=pure $(CPY) -m pip install -q --disable-pip-version-check '.[dev]'
	@echo "installing homeport into $(CVENV) (compiling the gateway's hot path with mypyc) ..."
	@$(CPY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps .
	@$(CPY) -c 'from homeport.gateway import build; \
		print("build:", build() if build() == "mypyc" else "python (no compiler? pip install -v .)")'
	@touch $@

compiled: $(CSTAMP)    ## the install with the hot path compiled, in .venv-compiled (fails if pure)
	@$(CPY) -c 'import sys; from homeport.gateway import build; \
		sys.exit(None if build() == "mypyc" else "the mypyc build failed: pip install -v . says why")'
	@echo "compiled: $(CVENV)/bin/homeport"

test-compiled: compiled ## the gateway's tests against the compiled build
	HOMEPORT_EXPECT_BUILD=mypyc $(CPY) -m pytest $(PYTEST_ARGS) $(COMPILED_TESTS)

clean:
	rm -rf $(VENV) $(CVENV) build dist .mypy_cache .ruff_cache
