# Autopilot — two commands on a fresh machine:
#   make run    set up and start Airflow (standalone, SQLite) with Autopilot and the example definitions
#   make test   set up and run the test suite (SQLite, then PostgreSQL as the metadata database)
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres bench lint schema validate clean

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) is required (Airflow 3.3 targets Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(STAMP): $(VENV)/bin/python setup.cfg pyproject.toml
	$(VENV)/bin/pip install --quiet -e '.[test]'
	@# the editable install leaves an egg-info in the checkout; with the checkout on sys.path Airflow
	@# would see the distribution twice and load the plugin twice
	@rm -rf airflow_provider_autopilot.egg-info
	@touch $(STAMP)

run: $(STAMP)
	@scripts/standalone.sh

test: $(STAMP)
	@scripts/ensure-services.sh
	$(PY) -m pytest -q
	AUTOPILOT_TEST_DB=postgres $(PY) -m pytest -q -m "not sqlite_only"

test-sqlite: $(STAMP)
	$(PY) -m pytest -q

test-postgres: $(STAMP)
	@scripts/ensure-services.sh
	AUTOPILOT_TEST_DB=postgres $(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks.run

lint: $(STAMP)
	$(VENV)/bin/ruff check autopilot_provider dag_factory plugins tests benchmarks
	$(VENV)/bin/ruff format --check autopilot_provider dag_factory plugins tests benchmarks

schema: $(STAMP)
	$(VENV)/bin/autopilot schema

validate: $(STAMP)
	$(VENV)/bin/autopilot validate

clean:
	rm -rf $(VENV) .airflow .pytest_cache *.egg-info
