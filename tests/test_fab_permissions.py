"""The code-author permission under Airflow's FAB auth manager (what production deployments use).

Its own SQLite database and a real API server with the FAB auth manager: ``autopilot db migrate``
creates the two Autopilot permissions and Admin gets them; a role granted only ``Autopilot
Definitions`` may save a workflow of reviewed parts but not one with a script; granting ``Autopilot
Code`` with Airflow's own ``airflow roles add-perms`` lets the same user save it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.fixtures.api_server import ApiServer

pytestmark = [pytest.mark.server, pytest.mark.sqlite_only]

FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
API = "/autopilot/api/v1/definitions"
SCRIPTED = """\
apiVersion: autopilot/v1
kind: Workflow
id: fab_scripted
steps:
  - id: hello
    script:
      bash: echo hello
"""
PASSWORD = "fab-test-password"


class FabServer(ApiServer):
    """The API server with the FAB auth manager; users are FAB users made with ``airflow users create``."""

    def token(self, user: str) -> str:
        if user not in self._tokens:
            response = httpx.post(
                f"{self.base_url}/auth/token", json={"username": user, "password": PASSWORD}, timeout=30
            )
            assert response.status_code in (200, 201), response.text
            self._tokens[user] = response.json()["access_token"]
        return self._tokens[user]


@pytest.fixture(scope="module")
def fab(airflow_db):
    home = Path(tempfile.mkdtemp(prefix="autopilot-fab-"))
    env = {
        "AIRFLOW__CORE__AUTH_MANAGER": FAB,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'fab.db'}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "autopilot_provider.sqlite.CONNECT_ARGS",
        # FAB keeps a user (and their permissions) for [fab] cache_ttl seconds: a grant applies at once
        "AIRFLOW__FAB__CACHE_TTL": "0",
    }
    full = {**os.environ, **env}

    def run(*argv: str) -> str:
        done = subprocess.run(argv, env=full, capture_output=True, text=True, timeout=300, cwd=home)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    airflow = [sys.executable, "-m", "airflow"]
    run(*airflow, "db", "migrate")
    migrated = run(sys.executable, "-m", "autopilot_provider.cli", "db", "migrate")
    assert "can_edit on Autopilot Code" in migrated
    run(*airflow, "roles", "create", "Designer")
    # a designer: Airflow's own "User" permissions on DAGs, plus the Autopilot designer permission
    run(*airflow, "roles", "add-perms", "Designer", "-r", "DAGs", "-a", "can_read", "can_edit")
    run(*airflow, "roles", "add-perms", "Designer", "-r", "Autopilot Definitions", "-a", "can_edit")
    for user, role in (("dora", "Designer"), ("root", "Admin")):
        run(
            *airflow, "users", "create", "--username", user, "--password", PASSWORD, "--role", role,
            "--firstname", user, "--lastname", "Test", "--email", f"{user}@example.com",
        )  # fmt: skip
    server = FabServer(home, users={}, extra_env=env)
    server.start()
    try:
        yield server, run
    finally:
        server.stop()


def test_fab_grants_code_authoring_separately(fab):
    server, run = fab
    root = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    dora, admin = server.client("dora"), server.client("root")

    session = dora.get("/autopilot/api/v1/session").json()
    assert (session["can_edit_definitions"], session["can_author_code"]) == (True, False)
    refused = dora.post(API, json={"path": "fab_test/scripted.yaml", "content": SCRIPTED})
    assert refused.status_code == 403, refused.text
    assert "Autopilot Code" in refused.json()["detail"]["message"]
    assert not (root / "fab_test" / "scripted.yaml").exists()

    assert admin.get("/autopilot/api/v1/session").json()["can_author_code"] is True

    run(sys.executable, "-m", "airflow", "roles", "add-perms", "Designer", "-r", "Autopilot Code", "-a", "can_edit")
    assert dora.get("/autopilot/api/v1/session").json()["can_author_code"] is True
    try:
        saved = dora.post(API, json={"path": "fab_test/scripted.yaml", "content": SCRIPTED})
        assert saved.status_code == 201, saved.text
    finally:
        (root / "fab_test" / "scripted.yaml").unlink(missing_ok=True)
