"""`make run` end to end: scripts/standalone.sh starts Airflow standalone (scheduler, dag-processor,
API server, triggerer) on its own SQLite database; the examples load as DAGs, a broken definition is
an import error naming file:line:col, and a triggered run succeeds through the real scheduler. Then
the README's walkthrough: alice requests a backup in the portal and the reference scenario runs
against the sandbox standalone.sh starts (mail, Slack, the example backup product, ServiceNow), with
carol, bob and dave approving through the API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.fixtures.scenario import reference_scenario, wait

pytestmark = pytest.mark.sqlite_only  # standalone always uses its own SQLite database

BROKEN = "apiVersion: autopilot/v1\nkind: Workflow\nid: broken\nsteps:\n  - id: a\n    scrpt: {bash: echo}\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_make_run_serves_the_examples_and_runs_one(tmp_path: Path):
    home, definitions = tmp_path / "home", tmp_path / "definitions"
    shutil.copytree(REPO / "definitions", definitions)
    (definitions / "broken.yaml").write_text(BROKEN)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "AUTOPILOT_DEFINITIONS"}
    env.update(AIRFLOW_HOME=str(home), AUTOPILOT_DEFINITIONS=str(definitions), AIRFLOW__API__PORT=str(port))
    # log servers off the defaults 8793/8794, which a stack in another test process may hold
    env.update(
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(_free_port()),
    )
    log = (tmp_path / "standalone.log").open("w")
    proc = subprocess.Popen(
        [str(REPO / "scripts/standalone.sh")], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    client = httpx.Client(timeout=60)  # two cores run five Airflow components here: be patient
    try:
        base = f"http://127.0.0.1:{port}"
        passwords = home / "simple_auth_manager_passwords.json.generated"
        # the banner comes after the migration and the sandbox's start: wait for it, then compare
        output = wait(
            lambda: "login: admin / " in (text := (tmp_path / "standalone.log").read_text()) and text,
            300,
            "the login banner",
        )
        password = json.loads(passwords.read_text())["admin"]
        assert f"login: admin / {password}" in output and f"http://localhost:{port}" in output

        def token():
            r = client.post(f"{base}/auth/token", json={"username": "admin", "password": password})
            return r.status_code == 201 and r.json()["access_token"]

        headers = {"Authorization": f"Bearer {wait(token, 180, 'the API server')}"}

        def dags():
            found = {d["dag_id"] for d in client.get(f"{base}/api/v2/dags", headers=headers).json()["dags"]}
            return found >= {"hello_world", "add_machine_to_backups", "nightly_disk_report"} and found

        assert "broken" not in wait(dags, 180, "the example DAGs")

        def import_errors():
            return client.get(f"{base}/api/v2/importErrors", headers=headers).json()["import_errors"]

        errors = wait(import_errors, 60, "the import error")
        assert [e["filename"] for e in errors] == ["broken.yaml.py"]
        assert (
            "definitions/broken.yaml:6:5: step 'a': unknown field 'scrpt' (did you mean 'script'?)"
            in errors[0]["stack_trace"]
        )

        def trigger():
            # The DAG is listed as soon as the dag-processor wrote it; on a loaded machine SQLite can
            # still be busy with the other components' writes, so a refusal here is retried and shown.
            r = client.post(
                f"{base}/api/v2/dags/hello_world/dagRuns",
                headers=headers,
                json={"logical_date": None, "conf": {"name": "Ada"}},
            )
            if r.status_code == 200:
                return r.json()
            print(f"trigger refused: {r.status_code} {r.text}")
            return None

        run = wait(trigger, 120, "the hello_world run to be accepted")

        def finished():
            state = client.get(f"{base}/api/v2/dags/hello_world/dagRuns/{run['dag_run_id']}", headers=headers).json()[
                "state"
            ]
            return state in ("success", "failed") and state

        assert wait(finished, 180, "the hello_world run") == "success"

        reference_scenario(client, base, json.loads(passwords.read_text()), home / "sandbox")
    finally:
        client.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
