"""The UI end to end: Debian's chromium (driven by playwright-core with its executable path) against a
real Airflow API server with the Autopilot plugin, logged in through Airflow's own login page.

Each scenario is a Node script in tests/e2e/ (Playwright's API is JavaScript-first and the UI's
node_modules already hold playwright-core); it prints PASS/FAIL and saves a screenshot of every open
page into tests/artifacts/ when it fails — or when it runs out of its time limit, which is set below
this module's subprocess timeout for that reason. This module arranges the server side and checks what
the outside world saw: the YAML file, the DAG in Airflow, the run and its state.

Without chromium, node or the built UI these tests skip — except under ``make test``, which sets
``AUTOPILOT_REQUIRE_E2E=1``: then they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from autopilot_plugin import ui

pytestmark = pytest.mark.server

#: The designer scenario drags script steps onto the canvas as "editor": that is code authoring, so
#: here the `user` role holds the code-author permission (by default only admins do).
API_SERVER_ENV = {"AIRFLOW__AUTOPILOT__CODE_AUTHOR_ROLES": "user,op,admin"}

REPO = Path(__file__).resolve().parent.parent
E2E = REPO / "tests" / "e2e"
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = os.environ.get("AUTOPILOT_CHROMIUM", "/usr/bin/chromium")
#: A scenario's subprocess timeout; the script itself stops (with screenshots) this much earlier.
TIMEOUT = 300
MARGIN = 30


def unavailable(reason: str) -> None:
    """Skip, or fail when the browser tests are required (``make test``)."""
    if os.environ.get("AUTOPILOT_REQUIRE_E2E"):
        pytest.fail(f"{reason}; AUTOPILOT_REQUIRE_E2E is set, so the browser tests may not be skipped")
    pytest.skip(reason)


@pytest.fixture(scope="module", autouse=True)
def browser_available():
    if not Path(CHROMIUM).is_file():
        unavailable(f"no chromium at {CHROMIUM} (scripts/ensure-chromium.sh installs it)")
    if shutil.which("node") is None or not (REPO / "ui" / "node_modules" / "playwright-core").is_dir():
        unavailable("node and ui/node_modules are needed (make ui)")
    if not (ui.DIST / "index.html").is_file():
        unavailable("the UI is not built (make ui)")


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def run_scenario(api_server, script: str, user: str, timeout: int = TIMEOUT, **env: str) -> str:
    try:
        result = subprocess.run(
            ["node", str(E2E / script)],
            env={
                **os.environ,
                "AIRFLOW_URL": api_server.base_url,
                "E2E_USER": user,
                "E2E_PASSWORD": api_server.passwords[user],
                "ARTIFACTS": str(ARTIFACTS),
                "AUTOPILOT_CHROMIUM": CHROMIUM,
                "E2E_TIME_LIMIT_MS": str((timeout - MARGIN) * 1000),
                **env,
            },
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout) + _text(exc.stderr)
        pytest.fail(
            f"{script} did not end within {timeout}s (screenshots in {ARTIFACTS}); its output:\n{output[-4000:]}"
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{script} failed (screenshots in {ARTIFACTS}):\n{output[-4000:]}"
    return output


def process_dags() -> None:
    """One pass of the real dag-processor over the Autopilot bundle (as `airflow standalone` runs it)."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dag-processor", "--num-runs", "2", "--bundle-name", "autopilot"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_workflow_designed_by_dragging_and_connecting_is_saved_and_becomes_a_dag(api_server, admin, definitions_dir):
    from autopilot_provider.definitions import models
    from autopilot_provider.definitions.graph import dependencies

    workflow_id = f"e2e_designed_{uuid.uuid4().hex[:8]}"
    path = definitions_dir / f"{workflow_id}.yaml"
    try:
        run_scenario(api_server, "designer.mjs", "editor", WORKFLOW_ID=workflow_id)

        assert path.is_file(), "the designer did not write the YAML file"
        workflow = models.Workflow.model_validate(yaml.safe_load(path.read_text()))
        assert [s.id for s in workflow.steps] == ["script_1", "script_2"]
        assert dependencies(workflow.steps) == {"script_1": [], "script_2": ["script_1"]}
        assert workflow.steps[1].title == "Second step"
        # typed into the side panel's form generated from the script kind's JSON Schema
        assert yaml.safe_load(path.read_text())["steps"][1]["script"] == {"bash": "echo second step"}
        # the conflicting save overwrote nothing; restoring revision 1 made revision 3
        revisions = admin.get(f"/autopilot/api/v1/definitions/{workflow_id}.yaml/revisions").json()["revisions"]
        assert [(r["number"], r["action"], r["author"]) for r in revisions] == [
            (3, "update", "editor"),
            (2, "update", "editor"),
            (1, "create", "editor"),
        ]
        first = admin.get(f"/autopilot/api/v1/definitions/{workflow_id}.yaml/revisions/1").json()["content"]
        second = admin.get(f"/autopilot/api/v1/definitions/{workflow_id}.yaml/revisions/2").json()["content"]
        assert "echo theirs" in second and "Mine" not in second
        assert yaml.safe_load(path.read_text()) == yaml.safe_load(first)

        process_dags()
        dag = admin.get(f"/api/v2/dags/{workflow_id}")
        assert dag.status_code == 200, dag.text
        tasks = {t["task_id"] for t in admin.get(f"/api/v2/dags/{workflow_id}/tasks").json()["tasks"]}
        assert {"script_1", "script_2"} <= tasks

        output = run_scenario(api_server, "designer_run.mjs", "editor", WORKFLOW_ID=workflow_id)
        run_id = re.search(r"^RUN_ID=(.+)$", output, re.M).group(1)
        run = admin.get(f"/api/v2/dags/{workflow_id}/dagRuns/{run_id}")
        assert run.status_code == 200, run.text
    finally:
        path.unlink(missing_ok=True)


def test_opening_and_saving_an_unchanged_definition_keeps_it_byte_for_byte(api_server, definitions_dir):
    before = (definitions_dir / "add_machine_to_backups.yaml").read_bytes()
    run_scenario(api_server, "designer_unchanged.mjs", "admin", DEFINITION="add_machine_to_backups.yaml")
    assert (definitions_dir / "add_machine_to_backups.yaml").read_bytes() == before


def test_a_task_step_gets_its_form_from_the_chosen_catalog_operation(api_server):
    run_scenario(api_server, "designer_task.mjs", "admin")
