"""The approvals inbox's list (``GET /autopilot/api/v1/approvals?mine=true``): a request addressed to a
group shows to that group's members and to nobody else.

A real pending approval: the workflow runs in-process (``dag.test()``, as tests/test_approvals.py's
in-process tests do) until its approval step parks; meanwhile a thread asks a real API server — on
the same database — what each user's inbox holds, then approves as the group's member so the run
ends. People and groups are those of definitions/contacts.yaml: bob is in *operations*, alice in
*platform*, dave in *storage*.
"""

from __future__ import annotations

import os
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import task_states
from tests.fixtures.api_server import ApiServer, migrate_autopilot

pytestmark = pytest.mark.server

API = "/autopilot/api/v1/approvals"
DAG_ID = "inbox_mine_group"
USERS = {"admin": "admin", "bob": "user", "alice": "user", "dave": "user"}
WORKFLOW = f"""\
    apiVersion: autopilot/v1
    kind: Workflow
    id: {DAG_ID}
    steps:
      - id: approve
        approval:
          from: [group:operations]
          subject: Restart the web tier?
          timeout: 3m
      - id: restart
        script: {{bash: echo restarted}}
    """


@pytest.fixture(scope="module")
def people_server(airflow_db):
    """An API server whose users are people of the contacts (the shared one has admin/editor/viewer)."""
    migrate_autopilot()
    server = ApiServer(Path(os.environ["AIRFLOW_HOME"]), users=USERS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _mine(client, *, mine: bool = True) -> list[dict]:
    response = client.get(API, params={"mine": mine})
    assert response.status_code == 200, response.text
    return [a for a in response.json()["approvals"] if a["dag_id"] == DAG_ID]


def test_mine_lists_a_group_approval_to_its_members_and_not_to_others(
    people_server, run_workflow, write_definition, monkeypatch
):
    # configure Airflow's ORM in this thread before the inbox thread uses it (see tests/fixtures/voters.py)
    import airflow.dag_processing.dagbag  # noqa: F401
    import airflow.models.dagrun  # noqa: F401

    from autopilot_provider.operators import guard
    from autopilot_provider.server.approvals import Approvals

    write_definition(f"{DAG_ID}.yaml", textwrap.dedent(WORKFLOW))
    clients = {user: people_server.client(user) for user in USERS}
    # dag.test() runs the steps here, not on a worker of that server: give them the key that verifies
    # its decisions as an admin would, copied from the server's public route
    key = people_server.client().get("/autopilot/api/v1/keys/approvals")
    assert key.status_code == 200, key.text
    monkeypatch.setenv("AIRFLOW__AUTOPILOT__APPROVAL_PUBLIC_KEY", key.json()["public_key"])
    monkeypatch.setattr(guard, "_public_key", None)
    seen: dict[str, object] = {}
    errors: list[BaseException] = []
    finished = threading.Event()

    def inbox() -> None:
        try:
            deadline = time.monotonic() + 120
            while not (found := _mine(clients["bob"])):
                if finished.is_set() or time.monotonic() > deadline:
                    raise AssertionError("the approval never reached bob's inbox")
                time.sleep(0.5)
            seen["bob"] = found
            for user in ("alice", "dave", "admin"):
                seen[user] = _mine(clients[user])
            seen["everyone's"] = _mine(clients["admin"], mine=False)
            vote = clients["bob"].post(f"{API}/{found[0]['id']}/votes", json={"decision": "approve", "comment": "go"})
            seen["vote"] = vote.status_code, vote.text
            seen["bob after"] = _mine(clients["bob"])
            # an answer right after the task parked is picked up by the sweep, which no process runs here
            approvals = Approvals()
            while not finished.wait(0.5):
                approvals.resume_answered()
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    thread = threading.Thread(target=inbox, name="inbox", daemon=True)
    thread.start()
    try:
        dag_run = run_workflow(DAG_ID)
    finally:
        finished.set()
        thread.join(timeout=30)
    if errors:
        raise errors[0]

    [approval] = seen["bob"]
    assert approval["subject"] == "Restart the web tier?"
    assert approval["state"] == "pending" and approval["can_vote"] is True
    assert [(s["ref"], s["state"]) for s in approval["slots"]] == [("group:operations", "open")]
    # not asked: alice (platform), dave (storage), admin (nobody's member) — though admin sees it all
    assert seen["alice"] == [] and seen["dave"] == [] and seen["admin"] == []
    assert [a["id"] for a in seen["everyone's"]] == [approval["id"]]
    assert seen["vote"][0] == 201, seen["vote"]
    assert seen["bob after"] == []  # decided: no longer waiting for bob
    assert task_states(dag_run) == {"approve": "success", "restart": "success"}, task_states(dag_run)
