# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make run    start the whole system (web, relay, consumers) on embedded defaults
#   make test   install and run the whole test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# What is installed is recorded by a stamp named after the requirements' checksum, so an
# edited requirements file reinstalls. `make run` installs the runtime only; tests, lint and
# benchmarks also install their tools (requirements-dev.txt).
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
DEV_STAMP := $(VENV)/.installed-dev-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install install-dev run test bench lint format clean

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "Python 3.11 or newer is needed: set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-[0-9]*
	touch $(STAMP)

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP) $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

run: install
	@bin/run

test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

# make bench            full run (minutes): every scenario of docs/benchmarks.md
# make bench QUICK=1    a few seconds per scenario (the test suite runs this once)
# make bench PROFILE=1  also sample every process of the pipeline scenario with py-spy
# The benchmark's own settings install its app; the processes it measures run production's.
bench: install-dev
	DJANGO_SETTINGS_MODULE=config.settings_bench $(PY) manage.py bench $(if $(QUICK),--quick,) $(if $(PROFILE),--profile,) $(BENCH_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) var/static var/test_db*.sqlite3*
