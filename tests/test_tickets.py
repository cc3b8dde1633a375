"""`ticket` steps against a local ServiceNow instance (tests/fixtures/servicenow.py) that speaks the
Table API: each test writes a workflow, declares the connection (``AIRFLOW_CONN_<ID>``), runs the
workflow with ``dag.test()`` and checks what ServiceNow received and holds — and, through a real API
server, that "My requests" shows the run's ticket.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from airflow.sdk._shared.secrets_masker import _secrets_masker, redact

from autopilot_provider.hooks.servicenow import ServiceNowError, ServiceNowHook
from tests.conftest import task_states
from tests.fixtures.servicenow import PASSWORD, TOKEN, USER

BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def outputs(dag_run) -> dict:
    return {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in dag_run.get_task_instances()}


LIFECYCLE = """\
apiVersion: autopilot/v1
kind: Workflow
id: ticket_lifecycle
form:
  properties:
    hostname: {type: string, default: db01.example.com}
  required: [hostname]
steps:
  - id: open_ticket
    ticket:
      action: create
      fields:
        short_description: "Back up {{ form.hostname }}"
        description: "Requested through Autopilot (run {{ run.id }})"
      note: Request received.
  - id: tell
    script:
      env: {NUMBER: "{{ steps.open_ticket.outputs.number }}", RUN_TICKET: "{{ run.ticket.number }}"}
      bash: |
        echo "ticket $NUMBER / $RUN_TICKET"
        echo "said=$NUMBER" >> "$AUTOPILOT_OUTPUT"
        echo "run_ticket=$RUN_TICKET" >> "$AUTOPILOT_OUTPUT"
  - id: checked
    ticket:
      action: comment
      note: "Checks passed for {{ form.hostname }} (ticket {{ run.ticket.number }})."
  - id: triage
    ticket:
      action: update
      ticket: "{{ steps.open_ticket.outputs.number }}"
      fields: {urgency: "2"}
  - id: close
    ticket:
      action: close
      note: "{{ form.hostname }} is backed up."
"""


def test_a_ticket_is_opened_annotated_and_closed(servicenow_default, write_definition, run_workflow):
    sn = servicenow_default
    write_definition("ticket_lifecycle.yaml", LIFECYCLE)
    dag_run = run_workflow("ticket_lifecycle")
    assert str(dag_run.state) == "success", task_states(dag_run)

    created = sn.received(method="POST")
    assert len(created) == 1
    post = created[0]
    assert post.path == "/api/now/table/sc_request" and post.headers["authorization"] == BASIC
    assert post.headers["accept"] == "application/json"
    assert post.body["short_description"] == "Back up db01.example.com"
    assert post.body["description"] == f"Requested through Autopilot (run {dag_run.run_id})"

    values = outputs(dag_run)
    opened = values["open_ticket"]
    assert opened["number"] == "REQ0010001" and opened["table"] == "sc_request"
    assert len(opened["sys_id"]) == 32 and opened["state"] == "1"
    assert opened["url"] == f"{sn.url}/nav_to.do?uri=%2Fsc_request.do%3Fsys_id%3D{opened['sys_id']}"
    # the number travels with the run: a later step's template sees it, by step and as run.ticket
    assert values["tell"] == {"said": "REQ0010001", "run_ticket": "REQ0010001"}
    # comment/close without `ticket` use the run's ticket; update found it by number
    assert values["checked"]["number"] == values["triage"]["number"] == values["close"]["number"] == "REQ0010001"
    assert sn.received(method="GET")[0].query["sysparm_query"] == ["number=REQ0010001"]

    record = sn.record("REQ0010001")
    assert sn.work_notes("REQ0010001") == [
        "Request received.",
        "Checks passed for db01.example.com (ticket REQ0010001).",
        "db01.example.com is backed up.",
    ]
    assert record["urgency"] == "2"
    assert (record["state"], record["request_state"], record["active"]) == ("3", "closed_complete", "false")
    assert record["close_notes"] == "db01.example.com is backed up."
    assert values["close"]["state"] == "3"


REJECTED = """\
apiVersion: autopilot/v1
kind: Workflow
id: ticket_rejected
steps:
  - id: incident
    ticket:
      action: create
      table: incident
      connection: servicenow_bearer
      fields: {short_description: Disk full, urgency: "1"}
  - id: reject
    ticket:
      action: close
      connection: servicenow_bearer
      resolution: rejected
      note: Rejected by bob — no capacity left
      fields: {close_code: Not Solved (Not Reproducible)}
"""


def test_close_as_rejected_follows_the_tickets_table_with_a_bearer_token(
    servicenow_default, write_definition, run_workflow, monkeypatch
):
    sn = servicenow_default
    monkeypatch.setenv(
        "AIRFLOW_CONN_SERVICENOW_BEARER",
        json.dumps(sn.connection(login=None, password=None, extra={"token": TOKEN})),
    )
    write_definition("ticket_rejected.yaml", REJECTED)
    dag_run = run_workflow("ticket_rejected")
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert {r.headers["authorization"] for r in sn.received()} == {f"Bearer {TOKEN}"}
    record = sn.record("INC0010001")
    # an incident closed as rejected is canceled (8); `fields` add to the closing state
    assert (record["state"], record["close_code"]) == ("8", "Not Solved (Not Reproducible)")
    assert [r.path for r in sn.received(method="PATCH")] == [f"/api/now/table/incident/{record['sys_id']}"]
    assert sn.work_notes("INC0010001") == ["Rejected by bob — no capacity left"]
    assert outputs(dag_run)["reject"]["table"] == "incident"


FAILING = """\
apiVersion: autopilot/v1
kind: Workflow
id: ticket_failing
defaults: {retries: 2, retry_delay: 1s}
steps:
  - id: open_ticket
    ticket:
      action: create
      connection: servicenow_wrong
      fields: {short_description: never}
"""


def test_bad_credentials_fail_the_step_with_servicenows_message(
    servicenow_default, write_definition, run_workflow, monkeypatch, capfd
):
    sn = servicenow_default
    _secrets_masker().reset_masker()
    monkeypatch.setenv("AIRFLOW_CONN_SERVICENOW_WRONG", json.dumps(sn.connection(password="not-the-password")))
    write_definition("ticket_failing.yaml", FAILING)
    dag_run = run_workflow("ticket_failing")
    assert task_states(dag_run) == {"open_ticket": "failed"}
    assert len(sn.received()) == 1  # a 401 is not sent again, and the task is not retried
    assert sn.tickets() == []
    message = "ServiceNow answered HTTP 401 to POST /api/now/table/sc_request: User Not Authenticated (Required to provide Auth information)"
    assert message in capfd.readouterr().out
    with pytest.raises(ServiceNowError, match="User Not Authenticated") as caught:
        ServiceNowHook("servicenow_wrong").create("sc_request", {})
    assert caught.value.status == 401 and caught.value.permanent
    assert "not-the-password" not in redact("password not-the-password")


def test_an_unknown_ticket_fails_with_servicenows_404(servicenow_default):
    hook = ServiceNowHook()
    with pytest.raises(ServiceNowError, match="No Record found") as caught:
        hook.update("sc_request", "0" * 32, {"work_notes": "x"})
    assert caught.value.status == 404
    with pytest.raises(ServiceNowError, match="sc_request has no record numbered REQ9999999"):
        hook.get("sc_request", "REQ9999999")
    with pytest.raises(ServiceNowError, match="Invalid table nope"):
        hook.create("nope", {})


THROTTLED = """\
apiVersion: autopilot/v1
kind: Workflow
id: ticket_throttled
steps:
  - id: open_ticket
    ticket:
      action: create
      fields: {short_description: busy instance}
"""


def test_a_429_with_retry_after_is_sent_again_after_the_wait(servicenow_default, write_definition, run_workflow):
    sn = servicenow_default
    sn.throttle(1)
    write_definition("ticket_throttled.yaml", THROTTLED)
    dag_run = run_workflow("ticket_throttled")
    assert str(dag_run.state) == "success", task_states(dag_run)
    first, second = sn.received(method="POST")
    assert second.at - first.at >= 0.9  # Retry-After: 1
    assert [t["number"] for t in sn.tickets()] == ["REQ0010001"]  # one ticket, not two


def test_ticket_steps_validate_their_references(definitions_dir, write_definition):
    from autopilot_provider.repository.folder import Project

    write_definition(
        "ticket_invalid.yaml",
        """\
apiVersion: autopilot/v1
kind: Workflow
id: ticket_invalid
steps:
  - id: note
    ticket: {action: comment}
  - id: done
    ticket: {action: close, table: u_backup_request}
  - id: open
    ticket: {action: create, ticket: REQ0010001}
""",
    )
    messages = [str(d) for d in Project(definitions_dir).load("ticket_invalid.yaml").diagnostics]
    assert any("a comment needs `note`" in m for m in messages), messages
    assert any("`ticket` names an existing ticket" in m for m in messages), messages

    write_definition(
        "ticket_invalid.yaml",
        """\
apiVersion: autopilot/v1
kind: Workflow
id: ticket_invalid
steps:
  - id: note
    ticket: {action: comment, note: hello}
  - id: done
    ticket: {action: close, table: u_backup_request}
""",
    )
    path = "definitions/ticket_invalid.yaml"
    assert [str(d) for d in Project(definitions_dir).load("ticket_invalid.yaml").diagnostics] == [
        f"{path}:6:13: step 'note': comment needs `ticket` (a number or sys_id): "
        "there is no `create` ticket step to default to",
        f"{path}:8:13: step 'done': close needs `ticket` (a number or sys_id): "
        "there is no `create` ticket step to default to",
        f"{path}:8:36: step 'done': closing a u_backup_request record needs its "
        "closing `state` in `fields` (Autopilot knows the closed states of sc_request, sc_req_item, sc_task, "
        "incident, change_request)",
    ]


def test_the_connection_type_is_registered():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    manager.initialize_providers_hooks()
    hook = manager._hooks_lazy_dict["autopilot_servicenow"]
    hook = hook() if callable(hook) else hook
    assert hook.hook_class_name == "autopilot_provider.hooks.servicenow.ServiceNowHook"
    assert hook.connection_testable
    widgets = manager.connection_form_widgets
    fields = {k.rsplit("__", 1)[1]: w for k, w in widgets.items() if k.startswith("extra__autopilot_servicenow__")}
    assert {name for name, w in fields.items() if w.is_sensitive} == {"token"}
    assert manager.field_behaviours["autopilot_servicenow"]["relabeling"]["host"] == "Instance (host or URL)"


# ---------------------------------------------------------------------------------------------
# "My requests" shows the run's ticket
# ---------------------------------------------------------------------------------------------


@pytest.mark.server
def test_my_requests_lists_the_runs_ticket_numbers(
    servicenow_default, write_definition, run_workflow, api_server, admin
):
    write_definition("ticket_lifecycle.yaml", LIFECYCLE)
    dag_run = run_workflow("ticket_lifecycle")
    assert str(dag_run.state) == "success", task_states(dag_run)
    deadline = time.monotonic() + 30
    while True:  # the API server reads the definitions folder itself
        page = admin.get("/autopilot/api/v1/requests", params={"mine": "false", "limit": 500})
        assert page.status_code == 200, page.text
        mine = [r for r in page.json()["requests"] if r["run_id"] == dag_run.run_id]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(mine) == 1, [r["run_id"] for r in page.json()["requests"]]
    request = mine[0]
    assert request["tickets"] == ["REQ0010001"]  # opened, then commented on, updated and closed: once
    sys_id = servicenow_default.record("REQ0010001")["sys_id"]
    assert request["ticket_links"] == [
        {
            "number": "REQ0010001",
            "url": f"{servicenow_default.url}/nav_to.do?uri=%2Fsc_request.do%3Fsys_id%3D{sys_id}",
            "table": "sc_request",
        }
    ]
