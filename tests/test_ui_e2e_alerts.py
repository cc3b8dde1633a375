"""The Alerts page end to end, in headless chromium against a real API server with the real alert
endpoint: a signed delivery and a wrongly signed one show in the delivery log, filter, open in the
detail (secrets masked) and — as admin — replay; the designer and the catalog name the alert that can
start the workflow.

The browser scenario is tests/e2e/alerts.mjs (see tests/test_ui_e2e.py for how scenarios run); this
module arranges the alert, its workflow and its secret (an Airflow connection given to the API server
as an ``AIRFLOW_CONN_*`` variable) and checks what the outside world saw: the delivery log through the
API and the runs in Airflow.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.test_ui_e2e import browser_available, process_dags, run_scenario  # noqa: F401 - the skip fixture

pytestmark = pytest.mark.server

SECRET = secrets.token_urlsafe(24)
SUFFIX = uuid.uuid4().hex[:8]
WORKFLOW_ID = f"ui_e2e_alert_target_{SUFFIX}"
ALERT_ID = f"ui_e2e_alert_{SUFFIX}"
ALERT_TITLE = f"Array events (UI test {SUFFIX})"
CONNECTION = f"alert_ui_e2e_{SUFFIX}"
HOST = "web01.example.com"

#: the alert's secret, as its Airflow connection's password (never in the YAML)
API_SERVER_ENV = {
    f"AIRFLOW_CONN_{CONNECTION.upper()}": json.dumps({"conn_type": "generic", "password": SECRET}),
}

WORKFLOW = f"""\
    apiVersion: autopilot/v1
    kind: Workflow
    id: {WORKFLOW_ID}
    title: Back up a host (alert UI test)
    form:
      properties:
        hostname: {{type: string, title: Host}}
      required: [hostname]
    steps:
      - id: note
        script:
          env: {{HOST: "{{{{ form.hostname }}}}"}}
          bash: echo "backing up $HOST"
"""

ALERT = f"""\
    apiVersion: autopilot/v1
    kind: Alert
    id: {ALERT_ID}
    title: {ALERT_TITLE}
    description: A storage array reports hosts that lost their backup.
    owner: group:storage
    auth:
      scheme: github
      connection: {CONNECTION}
    match:
      - payload.severity in ['critical', 'major']
    routes:
      - id: add_backup
        workflow: {WORKFLOW_ID}
        form:
          hostname: "{{{{ payload.host }}}}"
        requester: alice
"""


@pytest.fixture(scope="module")
def alert(api_server):
    definitions = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    workflow = definitions / f"{WORKFLOW_ID}.yaml"
    path = definitions / "alerts" / f"{ALERT_ID}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    workflow.write_text(textwrap.dedent(WORKFLOW), encoding="utf-8")
    path.write_text(textwrap.dedent(ALERT), encoding="utf-8")
    try:
        process_dags()  # the workflow's DAG, so that the alert can start runs of it
        assert api_server.client("admin").get(f"/api/v2/dags/{WORKFLOW_ID}").status_code == 200
        yield path
    finally:
        path.unlink(missing_ok=True)
        workflow.unlink(missing_ok=True)


def test_deliveries_show_filter_open_and_replay_on_the_alerts_page(api_server, alert):
    admin = api_server.client("admin")
    editor = api_server.client("editor")
    output = run_scenario(
        api_server,
        "alerts.mjs",
        "admin",
        ADMIN="admin",
        ADMIN_PASSWORD=api_server.passwords["admin"],
        DESIGNER="editor",
        DESIGNER_PASSWORD=api_server.passwords["editor"],
        ALERT_ID=ALERT_ID,
        ALERT_TITLE=ALERT_TITLE,
        ALERT_SECRET=SECRET,
        ALERT_PATH=f"alerts/{ALERT_ID}.yaml",
        ALERT_HOST=HOST,
        WORKFLOW_ID=WORKFLOW_ID,
    )
    delivery = int(re.search(r"^DELIVERY=(\d+)$", output, re.M).group(1))
    replay = int(re.search(r"^REPLAY=(\d+)$", output, re.M).group(1))
    run_id = re.search(r"^RUN_ID=(.+)$", output, re.M).group(1).strip()

    # the log, as the API has it: the accepted delivery, the refused one, and the replay
    log = admin.get("/autopilot/api/v1/alerts/deliveries", params={"alert": ALERT_ID, "limit": 50})
    assert log.status_code == 200, log.text
    by_id = {d["id"]: d for d in log.json()["deliveries"]}
    assert by_id[delivery]["status"] == "accepted"
    assert [r["run_id"] for r in by_id[delivery]["runs"]] == [run_id]
    assert by_id[replay]["replay_of"] == delivery
    assert by_id[replay]["delivery_id"] == f"{by_id[delivery]['delivery_id']}#replay-1"
    assert sorted(d["status"] for d in by_id.values()) == ["accepted", "accepted", "rejected"]

    # the run the delivery started carries the mapped form value; the replay started another
    run = admin.get(f"/api/v2/dags/{WORKFLOW_ID}/dagRuns/{run_id}")
    assert run.status_code == 200, run.text
    assert run.json()["conf"]["hostname"] == HOST
    [replayed_run] = by_id[replay]["runs"]
    assert replayed_run["run_id"] != run_id
    assert admin.get(f"/api/v2/dags/{WORKFLOW_ID}/dagRuns/{replayed_run['run_id']}").status_code == 200

    # nothing secret was kept: the signature header and the secret-looking key are masked
    detail = admin.get(f"/autopilot/api/v1/alerts/deliveries/{delivery}").json()
    assert "do-not-store-me" not in json.dumps(detail)
    assert not str(detail["headers"].get("x-hub-signature-256", "")).startswith("sha256=")

    # replay is for admins: the designer was refused (the page said so), and nothing more was replayed
    refused = editor.post(f"/autopilot/api/v1/alerts/deliveries/{delivery}/replay")
    assert refused.status_code == 403, refused.text
    again = admin.get("/autopilot/api/v1/alerts/deliveries", params={"alert": ALERT_ID}).json()
    assert again["total_entries"] == 3
