# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make run    start the whole system (web, relay, consumers) on embedded defaults
#   make test   install and run the whole test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)

.PHONY: install run test bench lint format clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "Python 3.11 or newer is needed: set PYTHON=/path/to/python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	@bin/run

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# make bench            full run (minutes): every scenario of docs/benchmarks.md
# make bench QUICK=1    a few seconds per scenario (the test suite runs this once)
# make bench PROFILE=1  also sample every process of the pipeline scenario with py-spy
bench: install
	$(PY) manage.py bench $(if $(QUICK),--quick,) $(if $(PROFILE),--profile,) $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) var/static var/test_db*.sqlite3*
