"""Triggers: a data point read on a schedule raises an alert when its condition has held long enough,
and resolves it — through a real Airflow deployment (API server with the plugin and the alert
endpoint, dag-processor, scheduler, LocalExecutor).

The data point is a REST operation of a local server whose value the test sets; each read is a run of
the trigger's DAG, started through Airflow's REST API and waited for. Deliveries reach the alert
endpoint through a proxy that can lose an answer or refuse a request, as a network does. The
workflow the alert starts is paused: its runs are counted, not executed.
"""

from __future__ import annotations

import json
import os
import textwrap
import uuid
from pathlib import Path

import pytest

from autopilot_provider.repository.trigger_state import variable_key
from tests.fixtures.airflow_stack import AirflowStack
from tests.fixtures.loopback import ForwardingProxy, RecordingServer
from tests.fixtures.smtp import SmtpServer

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

API = "/autopilot/api/v1"
USERS = {"admin": "admin", "alice": "user"}
SECRET = "trig-" + uuid.uuid4().hex
TOKEN = "gauge-" + uuid.uuid4().hex
TRIGGER, SINK, ALERT = "gauge_high", "trigger_sink", "gauge_events"
GAUGE = "/api/gauges/disk"

FOLDER = "triggers_test"
DEFINITIONS = {
    "specs/gauge.openapi.yaml": """\
        openapi: 3.0.3
        info: {title: Gauges, version: "1.0"}
        servers: [{url: "https://gauges.example.com/api"}]
        security: [{bearer: []}]
        paths:
          /gauges/{name}:
            get:
              operationId: getGauge
              parameters:
                - {name: name, in: path, required: true, schema: {type: string}}
              responses:
                "200":
                  description: The gauge
                  content:
                    application/json:
                      schema: {type: object, properties: {value: {type: number}}}
        components:
          securitySchemes:
            bearer: {type: http, scheme: bearer}
        """,
    "gauge_api.yaml": """\
        apiVersion: autopilot/v1
        kind: Api
        id: gauges
        spec: specs/gauge.openapi.yaml
        connection: gauge_api
        """,
    "sink.yaml": f"""\
        apiVersion: autopilot/v1
        kind: Workflow
        id: {SINK}
        form:
          properties:
            trigger: {{type: string}}
            value: {{type: number}}
            incident: {{type: string}}
          required: [trigger, value]
        steps:
          - id: noop
            script: {{bash: "true"}}
        """,
    "alert.yaml": f"""\
        apiVersion: autopilot/v1
        kind: Alert
        id: {ALERT}
        auth: {{scheme: github, connection: alert_gauge}}
        match:
          - payload.trigger == '{TRIGGER}'
        routes:
          - id: open
            workflow: {SINK}
            when: payload.status == 'firing'
            form: {{trigger: "{{{{ payload.trigger }}}}", value: "{{{{ payload.value }}}}", incident: "{{{{ payload.id }}}}"}}
            requester: alice
        """,
    # read only when the test says: a start date far ahead keeps the scheduler from starting runs
    "trigger.yaml": f"""\
        apiVersion: autopilot/v1
        kind: Trigger
        id: {TRIGGER}
        title: Disk almost full
        owner: person:alice
        schedule: {{cron: "0 0 1 1 *", start_date: "2999-01-01"}}
        rest:
          api: gauges
          operation: getGauge
          params: {{name: disk}}
        value: response.body.value
        condition: value >= 90
        for: 1s
        resolve: value < 70
        alert: {ALERT}
        notify:
          to: [owner]   # the trigger's owner: person:alice
          subject: "{{{{ trigger.title }}}}: {{{{ trigger.status }}}} ({{{{ trigger.value }}}}%)"
        retries: 1
        retry_delay: 1s
        """,
}


@pytest.fixture(scope="module")
def world(airflow_db):
    """The deployment, the gauge it reads, the proxy in front of its alert endpoint, and a mail server."""
    home = Path(os.environ["AIRFLOW_HOME"])
    root = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    for name, text in DEFINITIONS.items():
        path = root / FOLDER / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    gauge, proxy, smtp = RecordingServer(), ForwardingProxy(), SmtpServer()
    smtp.start()
    env = {
        "AIRFLOW_CONN_GAUGE_API": json.dumps(
            {"conn_type": "autopilot_openapi", "host": gauge.url + "/api", "extra": {"token": TOKEN}}
        ),
        "AIRFLOW_CONN_ALERT_GAUGE": json.dumps({"conn_type": "generic", "password": SECRET}),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp.connection()),
        "AIRFLOW__AUTOPILOT__TRIGGER_ALERT_BASE_URL": proxy.url,
        "AIRFLOW__AUTOPILOT__APPROVAL_SWEEP_SECONDS": "0",
    }
    deployment = AirflowStack(home, users=USERS, extra_env=env)
    proxy.target = deployment.api.base_url
    deployment.start()
    try:
        deployment.wait_for_dag(SINK)
        response = deployment.client("admin").patch(f"/api/v2/dags/{SINK}", json={"is_paused": True})
        assert response.status_code == 200, response.text
        yield deployment, gauge, proxy, smtp
    finally:
        deployment.stop()
        for server in (gauge, proxy):
            server.stop()
        smtp.stop()
        for name in DEFINITIONS:
            (root / FOLDER / name).unlink(missing_ok=True)


def read(world, value: float | None) -> dict:
    """Set the gauge, run the trigger's DAG once (waiting for it) and return its task's XCom."""
    stack, gauge, _, _ = world
    if value is not None:
        gauge.routes[GAUGE] = (200, {"Content-Type": "application/json"}, json.dumps({"value": value}).encode())
    run_id = stack.trigger(TRIGGER, as_user="admin")
    state = stack.wait_for_run(TRIGGER, run_id)
    assert state == "success", stack.explain(TRIGGER, run_id)
    return stack.xcom(TRIGGER, run_id, "check")


def deliveries(stack: AirflowStack, **filters) -> list[dict]:
    response = stack.client("admin").get(f"{API}/alerts/deliveries", params={"alert": ALERT, "limit": 500, **filters})
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


def run_count(stack: AirflowStack, dag_id: str) -> int:
    response = stack.client("admin").get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 1})
    assert response.status_code == 200, response.text
    return response.json()["total_entries"]


def stored_state(stack: AirflowStack) -> dict | None:
    """The trigger's state, as its Airflow Variable holds it (None before its first read)."""
    response = stack.client("admin").get(f"/api/v2/variables/{variable_key(TRIGGER)}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return json.loads(response.json()["value"])


def settle(world) -> dict:
    """Bring the trigger to `ok` with nothing pending (a low value resolves any incident, delivers any
    pending event) and forget the mails and requests so far; the state it is in then."""
    stack, gauge, proxy, smtp = world
    proxy.drop_answers = proxy.refuse = 0
    state = stored_state(stack)
    if state is None or state["status"] != "ok" or state["outbox"] is not None:
        assert read(world, 10)["status"] == "ok"
        state = stored_state(stack)
    assert state is not None and state["outbox"] is None
    smtp.clear()
    gauge.requests.clear()
    return state


def test_a_flapping_value_raises_one_alert_and_one_resolve(world):
    stack, gauge, _, smtp = world
    before = settle(world)
    runs_before, logged_before = run_count(stack, SINK), len(deliveries(stack))
    incident = before["sequence"] + 1
    # the trigger is an ordinary DAG: one task, one run at a time, no catch-up
    dag = stack.client("admin").get(f"/api/v2/dags/{TRIGGER}/details").json()
    assert dag["max_active_runs"] == 1 and dag["catchup"] is False and "trigger" in [t["name"] for t in dag["tags"]]
    statuses = []
    for value in (95, 60, 95, 96, 80, 92, 50):
        statuses.append(read(world, value))
    assert [(r["value"], r["status"]) for r in statuses] == [
        (95, "pending"),  # the condition holds, not yet for 1s
        (60, "ok"),  # it stopped holding: nothing happened
        (95, "pending"),
        (96, "firing"),  # it held for 1s: the alert
        (80, "firing"),  # below the condition, above resolve (hysteresis): still firing
        (92, "firing"),
        (50, "ok"),  # resolved
    ]
    events = [r["event"] for r in statuses if r["event"]]
    assert [(e["status"], e["value"], e["sequence"]) for e in events] == [
        ("firing", 96, incident),
        ("resolved", 50, incident),
    ]
    firing, resolved = events
    assert firing["since"] <= firing["at"] and resolved["since"] == firing["since"]
    assert firing["trigger"] == TRIGGER and firing["title"] == "Disk almost full" and firing["owner"] == "person:alice"
    # the gauge was read with the connection's credentials, its parameters in the path
    assert all(request[2]["authorization"] == f"Bearer {TOKEN}" for request in gauge.requests)
    assert {request[1] for request in gauge.requests} == {GAUGE}
    # exactly one firing and one resolved delivery, signed and accepted by the alert's endpoint
    every = deliveries(stack)
    logged = every[: len(every) - logged_before]  # newest first: this test's
    assert sorted((d["delivery_id"], d["status"]) for d in logged) == sorted(
        [(firing["id"], "accepted"), (resolved["id"], "filtered")]
    )
    assert firing["id"] == f"trigger-{TRIGGER}-{before['epoch']}-{incident}-firing"
    # one workflow run, with the event's values in its form
    [accepted] = [d for d in logged if d["status"] == "accepted"]
    [run] = accepted["runs"]
    assert run_count(stack, SINK) == runs_before + 1
    conf = stack.client("admin").get(f"/api/v2/dags/{SINK}/dagRuns/{run['run_id']}").json()["conf"]
    assert conf == {"trigger": TRIGGER, "value": 96, "incident": firing["id"]}
    # the owner was told twice: when it fired and when it resolved
    mails = smtp.wait_for(2)
    assert [m.subject for m in mails] == ["Disk almost full: firing (96%)", "Disk almost full: resolved (50%)"]
    assert all(m.rcpt_tos == ["alice@example.com"] for m in mails)
    state = stored_state(stack)
    assert state["status"] == "ok" and state["sequence"] == incident and state["outbox"] is None
    assert state["value"] == 50


def test_a_delivery_whose_answer_is_lost_is_not_repeated(world):
    """The alert endpoint takes the delivery but its answer never arrives: the task fails after the
    send, before it can record it; its retry sends the pending event again, which the endpoint
    recognises by its delivery id — one delivery accepted, one workflow run."""
    stack, _, proxy, smtp = world
    incident = settle(world)["sequence"] + 1
    runs_before = run_count(stack, SINK)
    assert read(world, 99)["status"] == "pending"
    proxy.drop_answers = 1
    result = read(world, 99)
    assert result["status"] == "firing" and result["event"] is None  # the retry found it already firing
    tries = (
        stack.client("admin")
        .get(f"/api/v2/dags/{TRIGGER}/dagRuns", params={"order_by": "-run_after", "limit": 1})
        .json()["dag_runs"][0]
    )
    task = stack.client("admin").get(f"/api/v2/dags/{TRIGGER}/dagRuns/{tries['dag_run_id']}/taskInstances/check")
    assert task.json()["try_number"] == 2, "the first try failed when the answer was lost"
    assert [what for _, _, what in proxy.seen[-2:]] == ["dropped 202", "200"]
    state = stored_state(stack)
    assert state["status"] == "firing" and state["sequence"] == incident and state["outbox"] is None
    delivery = f"trigger-{TRIGGER}-{state['epoch']}-{incident}-firing"
    assert [d["status"] for d in deliveries(stack) if d["delivery_id"] == delivery] == ["duplicate", "accepted"]
    assert run_count(stack, SINK) == runs_before + 1
    assert [m.subject for m in smtp.wait_for(1)] == ["Disk almost full: firing (99%)"]


def test_a_transition_that_could_not_be_delivered_is_sent_by_the_next_run(world):
    """The endpoint is unreachable for both tries of a run that resolves: the run fails, the event
    stays in the trigger's state, and the next run delivers it before reading again."""
    stack, gauge, proxy, smtp = world
    settle(world)
    assert read(world, 97)["status"] == "pending" and read(world, 98)["status"] == "firing"
    smtp.clear()
    proxy.refuse = 2
    gauge.routes[GAUGE] = (200, {"Content-Type": "application/json"}, b'{"value": 10}')
    run_id = stack.trigger(TRIGGER, as_user="admin")
    assert stack.wait_for_run(TRIGGER, run_id) == "failed"
    state = stored_state(stack)
    assert state["status"] == "ok" and state["outbox"]["payload"]["status"] == "resolved"
    incident = state["outbox"]["delivery_id"]
    assert [d for d in deliveries(stack) if d["delivery_id"] == incident] == []
    assert smtp.mails == []

    result = read(world, 12)
    assert result["status"] == "ok" and result["event"] is None
    assert [d["status"] for d in deliveries(stack) if d["delivery_id"] == incident] == ["filtered"]
    assert stored_state(stack)["outbox"] is None
    assert [m.subject for m in smtp.wait_for(1)] == ["Disk almost full: resolved (10%)"]
