"""The form portal and the approvals inbox end to end, in headless chromium against a whole Airflow
deployment (API server with the plugin, dag-processor, scheduler): alice requests a firewall change
through the portal, bob (group operations in definitions/contacts.yaml) approves it in the inbox, and
the run goes on to its change step; then alice asks for a change tomorrow and cancels it in My
requests before it starts.

The browser scenario is tests/e2e/requests.mjs (see tests/test_ui_e2e.py for how scenarios run).
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.airflow_stack import AirflowStack
from tests.fixtures.smtp import SmtpServer
from tests.test_ui_e2e import browser_available, run_scenario  # noqa: F401 - the skip fixture

pytestmark = pytest.mark.server

USERS = {"admin": "admin", "alice": "user", "bob": "user"}
WORKFLOW_ID = "ui_e2e_open_port"
TITLE = "Open a firewall port (UI test)"
SUBJECT = "Open port 22 on web01.example.com?"
WORKFLOW = f"""\
    apiVersion: autopilot/v1
    kind: Workflow
    id: {WORKFLOW_ID}
    title: {TITLE}
    description: Opens a port on a host firewall once operations agree.
    tags: [network]
    form:
      properties:
        host: {{type: string, title: Host}}
        port: {{type: integer, title: Port, default: 22}}
      required: [host]
    steps:
      - id: approve
        title: Operations approve
        approval:
          from: [group:operations]
          subject: "Open port {{{{ form.port }}}} on {{{{ form.host }}}}?"
          else: tell_rejected
      - id: change
        after: approve
        script:
          env: {{PORT: "{{{{ form.port }}}}", HOST: "{{{{ form.host }}}}"}}
          bash: echo "opening $PORT on $HOST"
      - id: tell_rejected
        script:
          bash: echo rejected
"""


@pytest.fixture(scope="module")
def stack(airflow_db):
    definitions = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    path = definitions / f"{WORKFLOW_ID}.yaml"
    path.write_text(textwrap.dedent(WORKFLOW), encoding="utf-8")
    smtp = SmtpServer()
    smtp.start()
    env = {
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp.connection()),
        "AIRFLOW__AUTOPILOT__APPROVAL_SWEEP_SECONDS": "1",
    }
    deployment = AirflowStack(Path(os.environ["AIRFLOW_HOME"]), users=USERS, extra_env=env)
    deployment.start()
    try:
        deployment.wait_for_dag(WORKFLOW_ID)
        yield deployment
    finally:
        deployment.stop()
        smtp.stop()
        path.unlink(missing_ok=True)


def test_a_request_from_the_portal_runs_and_continues_when_approved_in_the_inbox(stack):
    output = run_scenario(
        stack.api,
        "requests.mjs",
        "alice",
        REQUESTER="alice",
        REQUESTER_PASSWORD=stack.api.passwords["alice"],
        APPROVER="bob",
        APPROVER_PASSWORD=stack.api.passwords["bob"],
        WORKFLOW_TITLE=TITLE,
        APPROVAL_SUBJECT=SUBJECT,
    )
    run_id = re.search(r"^RUN_ID=(.+)$", output, re.M).group(1)

    run = stack.client("admin").get(f"/api/v2/dags/{WORKFLOW_ID}/dagRuns/{run_id}").json()
    assert run["conf"]["host"] == "web01.example.com" and run["conf"]["port"] == 22
    assert stack.wait_for_task(WORKFLOW_ID, run_id, "change", {"success"}) == "success"
    assert stack.task_states(WORKFLOW_ID, run_id)["tell_rejected"] == "skipped"
    requests = stack.client("alice").get("/autopilot/api/v1/requests", params={"mine": True}).json()["requests"]
    mine = next(r for r in requests if r["run_id"] == run_id)
    assert mine["requester"] == "alice"
    [approval] = mine["approvals"]
    assert approval["step_id"] == "approve" and approval["state"] == "approved"
    assert approval["slots"] == [{"label": approval["slots"][0]["label"], "state": "approved", "decided_by": "bob"}]
    assert [(v["user"], v["decision"]) for v in approval["votes"]] == [("bob", "approve")]

    # the request for tomorrow she cancelled: failed in Airflow without ever starting, noted
    later_id = re.search(r"^LATER_RUN_ID=(.+)$", output, re.M).group(1)
    later = stack.client("admin").get(f"/api/v2/dags/{WORKFLOW_ID}/dagRuns/{later_id}").json()
    assert later["conf"]["host"] == "later01.example.com"
    assert later["state"] == "failed" and later["start_date"] is None, later
    assert later["note"].startswith("Cancelled by alice before it started")
