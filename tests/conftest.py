"""Test environment: a throw-away AIRFLOW_HOME, a copy of definitions/ served by the Autopilot DAG
bundle, and a real metadata database — SQLite by default, PostgreSQL with AUTOPILOT_TEST_DB=postgres.

Airflow reads its configuration at import time, so everything here happens before airflow is imported.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# servers that speak the outside systems' protocols, as fixtures for every test module
pytest_plugins = [
    "tests.fixtures.backup_product",
    "tests.fixtures.api_server",
    "tests.fixtures.smtp",
    "tests.fixtures.slack",
    "tests.fixtures.servicenow",
]

REPO = Path(__file__).resolve().parent.parent
HOME = Path(tempfile.mkdtemp(prefix="autopilot-test-"))
DEFINITIONS = HOME / "definitions"
shutil.copytree(REPO / "definitions", DEFINITIONS)

BUNDLE_CONFIG = (
    '[{"name": "autopilot", "classpath": "dag_factory.bundle.AutopilotDagBundle", '
    f'"kwargs": {{"definitions": "{DEFINITIONS}", "refresh_interval": 2}}}}]'
)
os.environ.update(
    AIRFLOW_HOME=str(HOME),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__DAGS_FOLDER=str(DEFINITIONS),
    AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
    AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=BUNDLE_CONFIG,
    AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH=str(HOME / "bundles"),
    AIRFLOW__CORE__PARALLELISM="4",
    AIRFLOW__LOGGING__LOGGING_LEVEL=os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
    AUTOPILOT_DEFINITIONS=str(DEFINITIONS),
    # the accounts that may name someone else as the requester: dag.test()'s user, a ticket-system
    # integration, and the admin who starts runs for others in the API tests
    AIRFLOW__AUTOPILOT__ON_BEHALF_USERS="dag_test,servicenow_bot,admin",
)

PG_DATABASE = None
if os.environ.get("AUTOPILOT_TEST_DB") == "postgres":
    from tests.fixtures import postgres

    PG_DATABASE = postgres.create_database("autopilot_test")
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = postgres.sqlalchemy_url(PG_DATABASE)
    atexit.register(postgres.drop_database, PG_DATABASE)
else:
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{HOME / 'airflow.db'}"
    # as `make run` does (scripts/airflow-env.sh): the deployments' components share the file
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "autopilot_provider.sqlite.CONNECT_ARGS"

atexit.register(shutil.rmtree, HOME, True)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """The metadata database, migrated once per test session."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.fixture
def definitions_dir() -> Path:
    """The definitions folder the Airflow bundle serves (a copy of the repository's)."""
    return DEFINITIONS


@pytest.fixture
def write_definition(definitions_dir: Path):
    """Write extra definition files for one test; they are removed afterwards."""
    written: list[Path] = []

    def write(rel: str, text: str) -> Path:
        path = definitions_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
        return path

    yield write
    for path in written:
        path.unlink(missing_ok=True)


@pytest.fixture
def run_workflow(airflow_db, definitions_dir):
    """Load the bundle like Airflow does and run one workflow with dag.test(); returns the DagRun."""

    def run(dag_id: str, conf: dict | None = None):
        from airflow.dag_processing.dagbag import DagBag

        from dag_factory.bundle import AutopilotDagBundle

        bundle = AutopilotDagBundle(name="autopilot", definitions=str(definitions_dir))
        bundle.initialize()
        bag = DagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name="autopilot")
        assert dag_id in bag.dags, f"{dag_id} not loaded; import errors: {bag.import_errors}"
        return bag.dags[dag_id].test(run_conf=conf or {})

    return run


def task_states(dag_run) -> dict[str, str]:
    return {
        ti.task_id: str(ti.state.value if hasattr(ti.state, "value") else ti.state)
        for ti in dag_run.get_task_instances()
    }
