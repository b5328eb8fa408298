# cutover — two commands do all the setup on a fresh Debian 12 machine (as root):
#   make demo   the whole migration story on the bundled lab, gated by the suite
#   make test   the self-tests
# Both install what they need (Debian packages, a venv from /usr/bin/python3)
# and are safe to run again.

PYTHON_SYSTEM := /usr/bin/python3
# Only one lab fits on a machine: runs that bring one up take turns.
LAB_LOCK := flock -w 3600 /tmp/cutover-lab.lock
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cutover-installed

.PHONY: all install system tools demo test lint bench matrix lab-up lab-down lab-status docs screenshot clean

all: test

# Debian packages: the lab's daemons and tools, and venv support for Python.
system:
	bash lab/install.sh

$(STAMP): pyproject.toml
	@if ! $(PYTHON_SYSTEM) -c 'import ensurepip' 2>/dev/null; then \
	    echo "installing python3-venv"; \
	    apt-get install -y --no-install-recommends python3-venv >/dev/null || \
	    { apt-get update && apt-get install -y --no-install-recommends python3-venv; }; \
	fi
	$(PYTHON_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# setuptools' editable build warns that a folder named like the package may shadow it:
	@# that folder is the package itself here.
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: system $(STAMP)

# Node tools of the self-tests, pinned by tools/package-lock.json, installed in tools/node_modules
# (never globally): gitlab-ci-local runs docs/fleet.md's GitLab pipeline against the lab.
# Without npm the tests that need them skip, saying so (with CI=true they fail).
TOOLS_STAMP := tools/node_modules/.package-lock.json
tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): tools/package.json tools/package-lock.json
	@if command -v npm >/dev/null; then \
	    npm ci --prefix tools --no-audit --no-fund --loglevel=error && touch $@; \
	else \
	    echo "npm not found: the gitlab-ci-local self-test will skip (install nodejs and npm, then make tools)"; \
	fi

# make demo PROFILE=legacy: the same story from a CentOS 5-era old server (lab/profiles.py).
PROFILE ?= default
demo: install
	$(LAB_LOCK) $(PY) -m lab.demo --profile $(PROFILE)

# CUTOVER_SELFTEST_LAB=1: the lab self-tests run (elsewhere they skip, or fail with CI=true).
test: install tools
	CUTOVER_SELFTEST_LAB=1 $(LAB_LOCK) $(PY) -m pytest tests -p no:cacheprovider

# lint-imports: the import contracts of pyproject.toml (docs/architecture.md); tests/ runs them too.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache --no-logo

bench: install
	$(PY) -m bench

# Rewrite docs/detection-matrix.md from a real run (every lab fault, every VFIO/VM scenario).
matrix: install
	CUTOVER_SELFTEST_LAB=1 CUTOVER_WRITE_MATRIX=1 $(LAB_LOCK) $(PY) -m pytest -p no:cacheprovider \
	    tests/vfio/test_scenarios.py tests/trust/test_detection_matrix.py

docs: $(STAMP)
	$(PY) -m cutover checks --markdown > docs/checks.md

# docs/report.png: the HTML report of a run that needs no lab, rendered by headless Chromium.
screenshot: $(STAMP)
	@command -v chromium >/dev/null || { apt-get install -y --no-install-recommends chromium || \
	    { apt-get update && apt-get install -y --no-install-recommends chromium; }; }
	$(PY) -m tests.report_screenshot docs/report.png

lab-up: install
	$(PY) -m lab up

lab-down:
	$(PYTHON_SYSTEM) -m lab down

lab-status:
	$(PYTHON_SYSTEM) -m lab status

clean: lab-down
	rm -rf $(VENV) .tox .mypy_cache .ruff_cache .pytest_cache tools/node_modules
