# Autopilot — two commands on a fresh machine:
#   make run    set up and start Airflow (standalone, SQLite) with Autopilot and the example definitions
#   make test   set up and run the test suite (SQLite, then PostgreSQL as the metadata database)
# Distributed: make cluster / make cluster-stop, docker-compose.yaml, deploy/helm (docs/deploy.md).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres test-cluster test-faults fuzz bench lint schema validate clean ui test-ui dist cluster cluster-stop

# The UI (ui/, React + Vite) is built into plugins/ui_dist/, which ships in the package. It is rebuilt
# only when its sources change (the stamp is newer than every source file otherwise).
UI_SOURCES := ui/package.json ui/package-lock.json ui/index.html ui/vite.config.ts $(shell find ui/src ui/public -type f 2>/dev/null)
UI_STAMP := plugins/ui_dist/.built

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

ui/node_modules/.installed: ui/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm (Node 20+) is required to build the UI"; exit 1; }
	cd ui && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(UI_STAMP): ui/node_modules/.installed $(UI_SOURCES)
	cd ui && npm run build
	@touch $@

ui: $(UI_STAMP)

test-ui: $(UI_STAMP)
	cd ui && npm test

# The wheel and sdist, with the built UI inside (plugins/ui_dist is not in git: it is built first).
# Built from a copy of the sources, so no build/ or egg-info is left in the checkout (with the
# checkout on sys.path Airflow would see the distribution twice); tests/test_packaging.py checks the
# same. The build dependencies (build, setuptools, wheel) come with the test extra.
dist: $(STAMP) $(UI_STAMP)
	@rm -rf dist && tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  tar -cf - --exclude=__pycache__ --exclude='*.pyc' --exclude=.built setup.cfg pyproject.toml README.md \
	    autopilot_provider dag_factory plugins | tar -xf - -C "$$tmp" && \
	  $(PY) -m build --no-isolation --outdir "$(CURDIR)/dist" "$$tmp"
	@ls -l dist

run: $(STAMP) $(UI_STAMP)
	@scripts/standalone.sh

# In `make test` the UI's browser tests and the packaging test fail instead of skipping when chromium,
# node or the built UI is missing.
# Each pass runs on TEST_WORKERS processes (pytest-xdist), a whole test module per process, so one
# module's Airflow stack waits on its scheduler while the other's runs; the slowest tests are listed.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile --durations=15
test: export AUTOPILOT_REQUIRE_E2E = 1
test: $(STAMP) $(UI_STAMP)
	@scripts/ensure-services.sh
	@scripts/ensure-chromium.sh
	@scripts/ensure-compose.sh
	cd ui && npm test
	$(PY) -m pytest -q $(PYTEST_PARALLEL)
	AUTOPILOT_TEST_DB=postgres $(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not sqlite_only and not db_independent"

# The distributed topology on this machine (docs/deploy.md): PostgreSQL, Redis, the API server on
# http://localhost:8011, the scheduler, dag-processor, triggerer and two Celery workers, each a process
# with its own log and pid file under .cluster/ (scripts/cluster.py; AUTOPILOT_CLUSTER_* settings).
cluster: $(STAMP) $(UI_STAMP)
	@scripts/ensure-services.sh
	@$(PY) scripts/cluster.py start

cluster-stop:
	@$(PY) scripts/cluster.py stop

# Only the native cluster's tests (tests/test_cluster.py: a workflow and the reference scenario on
# two Celery workers, about 3.5 minutes; make test runs them too) and the compose checks.
test-cluster: $(STAMP) $(UI_STAMP)
	@scripts/ensure-services.sh
	@scripts/ensure-compose.sh
	$(PY) -m pytest -q tests/test_cluster.py tests/test_deploy.py

# The fault suite (tests/test_faults.py, not part of make test, about 11 minutes): on a native
# cluster of its own, a Celery worker killed mid-step, the scheduler restarted while votes arrive,
# the triggerer restarted during a REST wait, the API server restarted amid form submissions, every
# database connection dropped; each test prints what it measured (docs/deploy.md, "Faults").
test-faults: $(STAMP) $(UI_STAMP)
	@scripts/ensure-services.sh
	AUTOPILOT_FAULTS=1 $(PY) -m pytest -q -s -p no:cacheprovider tests/test_faults.py

test-sqlite: $(STAMP)
	$(PY) -m pytest -q

test-postgres: $(STAMP)
	@scripts/ensure-services.sh
	AUTOPILOT_TEST_DB=postgres $(PY) -m pytest -q

# The fuzz tests (tests/test_fuzz.py) with many more examples, random each run (make test runs a few
# hundred, the same each time): only diagnostics and evaluation errors may come out.
fuzz: $(STAMP)
	AUTOPILOT_FUZZ_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz.py

# make bench [BENCH_ARGS="--quick --only parse,validation"]; sections 2 and 3 need PostgreSQL
bench: $(STAMP)
	-@scripts/ensure-services.sh
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	@rm -rf airflow_provider_autopilot.egg-info
	$(PY) -m benchmarks.run $(BENCH_ARGS)

# ruff, then the layers of docs/architecture.md: the import contracts (pyproject.toml) and no import cycle
lint: $(STAMP)
	$(VENV)/bin/ruff check autopilot_provider dag_factory plugins tests benchmarks scripts
	$(VENV)/bin/ruff format --check autopilot_provider dag_factory plugins tests benchmarks scripts
	AIRFLOW_HOME=$${AIRFLOW_HOME:-$$(mktemp -d)} $(VENV)/bin/lint-imports --no-cache
	$(PY) scripts/import_cycles.py

schema: $(STAMP)
	$(VENV)/bin/autopilot schema

validate: $(STAMP)
	$(VENV)/bin/autopilot validate

clean:
	rm -rf $(VENV) .airflow .cluster .pytest_cache *.egg-info ui/node_modules plugins/ui_dist dist build
