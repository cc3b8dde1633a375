"""Events from outside: signed deliveries to alert endpoints start the mapped runs, through a real
Airflow deployment (API server with the plugin, dag-processor, scheduler).

Senders are played by the test with the signature schemes they use — GitHub's X-Hub-Signature-256,
Stripe's ``t=,v1=``, Standard Webhooks, a bearer token — computed here over the raw body as each
documents it. The secrets live in Airflow connections (``AIRFLOW_CONN_*``), as in a deployment. The
target workflows are paused, so the runs deliveries create are counted, not executed; only the
plain DAG scheduled on a route's asset runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.fixtures.airflow_stack import AirflowStack

API = "/autopilot/api/v1"
USERS = {"admin": "admin", "designer": "user", "viewer": "viewer", "alice": "user", "bob": "user"}
GH_SECRET = "gh-" + uuid.uuid4().hex
STRIPE_SECRET = "whsec_stripe_" + uuid.uuid4().hex
STD_KEY = os.urandom(24)
STD_SECRET = "whsec_" + base64.b64encode(STD_KEY).decode()
TOKEN = "tok-" + uuid.uuid4().hex
MAX_BODY = 64 * 1024
ASSET = "autopilot://alerts/asset_events"


def _connection(password: str) -> str:
    return json.dumps({"conn_type": "generic", "password": password})


FOLDER = "alerts_test"
DEFINITIONS = {
    "sink.yaml": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: alert_sink
        form:
          properties:
            hostname: {type: string, minLength: 3}
            policy: {type: string, enum: [gold, silver, bronze], default: silver}
            ticket: {type: string}
            count: {type: integer, minimum: 1}
          required: [hostname, policy]
        steps:
          - id: noop
            script: {bash: "true"}
        """,
    "bulk.yaml": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: alert_bulk
        form:
          properties:
            n: {type: integer}
          required: [n]
        steps:
          - id: noop
            script: {bash: "true"}
        """,
    "gh.yaml": """\
        apiVersion: autopilot/v1
        kind: Alert
        id: gh_events
        title: A GitHub-style sender
        owner: group:platform
        auth: {scheme: github, connection: alert_gh}
        match:
          - payload.action == 'opened'
        routes:
          - id: sink
            workflow: alert_sink
            form:
              hostname: "{{ payload.host }}"
              policy: "{{ payload.policy }}"
              count: "{{ payload.count }}"
            requester: alice
        """,
    "stripe.yaml": """\
        apiVersion: autopilot/v1
        kind: Alert
        id: stripe_events
        auth: {scheme: stripe, connection: alert_stripe, tolerance: 5m}
        routes:
          - id: sink
            workflow: alert_sink
            form: {hostname: "{{ payload.data.object.host }}", policy: gold}
            requester: alice
        """,
    "standard.yaml": """\
        apiVersion: autopilot/v1
        kind: Alert
        id: std_events
        auth: {scheme: standard, connection: alert_std}
        routes:
          - id: sink
            workflow: alert_sink
            form: {hostname: "{{ payload.host }}", ticket: "{{ alert.delivery_id }}"}
            requester: "{{ payload.owner }}"
        """,
    "bearer.yaml": """\
        apiVersion: autopilot/v1
        kind: Alert
        id: bearer_events
        auth: {scheme: bearer, connection: alert_bearer}
        delivery_id: {header: X-Request-Id}
        routes:
          - id: sink
            workflow: alert_sink
            form: {hostname: "{{ payload.host }}", count: "{{ payload.count | int }}"}
            requester: bob
        """,
    "am.yaml": """\
        apiVersion: autopilot/v1
        kind: Alert
        id: am_events
        title: Prometheus Alertmanager
        auth: {scheme: bearer, connection: alert_bearer}
        delivery_id: {expression: "payload.groupKey ~ '|' ~ payload.status"}
        match:
          - payload.version == '4'
        for_each: payload.alerts
        routes:
          - id: firing
            workflow: alert_sink
            when: event.status == 'firing'
            form: {hostname: "{{ event.labels.instance }}", ticket: "{{ event.fingerprint }}", policy: gold}
            requester: alice
          - id: resolved
            workflow: alert_sink
            when: event.status == 'resolved'
            form: {hostname: "{{ event.labels.instance }}", ticket: "{{ event.fingerprint }}", policy: bronze}
            requester: alice
        """,
    "bulk_alert.yaml": """\
        apiVersion: autopilot/v1
        kind: Alert
        id: bulk_events
        auth: {scheme: github, connection: alert_gh}
        routes:
          - id: bulk
            workflow: alert_bulk
            form: {n: "{{ payload.n }}"}
            requester: bob
        """,
    "asset_alert.yaml": f"""\
        apiVersion: autopilot/v1
        kind: Alert
        id: asset_events
        auth: {{scheme: github, connection: alert_gh}}
        routes:
          - id: sink
            workflow: alert_sink
            form: {{hostname: "{{{{ payload.host }}}}"}}
            requester: alice
            asset: {ASSET}
        """,
}
#: docs/alerts.md: its Stripe example alert, and the curl snippets of each sender (`# sender: <scheme>`)
DOC = (Path(__file__).resolve().parent.parent / "docs" / "alerts.md").read_text(encoding="utf-8")
DOC_BLOCKS = [fenced.split("\n", 1)[1] for fenced in DOC.split("```")[1::2]]  # without the language line
DEFINITIONS["greetings.yaml"] = next(b for b in DOC_BLOCKS if "id: greetings" in b)
SNIPPETS = {b.split("\n", 1)[0].split()[2]: b for b in DOC_BLOCKS if b.startswith("# sender: ")}

CONSUMER = f"""\
from airflow.sdk import DAG, Asset, task

with DAG(dag_id="alert_asset_consumer", schedule=[Asset({ASSET!r})], catchup=False):

    @task
    def consume(**context):
        return [event.extra for events in context["triggering_asset_events"].values() for event in events]

    consume()
"""


@pytest.fixture(scope="module")
def stack(airflow_db):
    home = Path(os.environ["AIRFLOW_HOME"])
    root = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    (root / FOLDER).mkdir(exist_ok=True)
    for name, text in DEFINITIONS.items():
        (root / FOLDER / name).write_text(textwrap.dedent(text), encoding="utf-8")
    plain = home / "plain_dags"
    plain.mkdir(exist_ok=True)
    (plain / "alert_asset_consumer.py").write_text(CONSUMER, encoding="utf-8")
    bundles = json.loads(os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
    bundles.append(
        {
            "name": "plain",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(plain), "refresh_interval": 2},
        }
    )
    env = {
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW_CONN_ALERT_GH": _connection(GH_SECRET),
        "AIRFLOW_CONN_ALERT_STRIPE": _connection(STRIPE_SECRET),
        "AIRFLOW_CONN_ALERT_STD": _connection(STD_SECRET),
        "AIRFLOW_CONN_ALERT_BEARER": _connection(TOKEN),
        # the shipped examples (definitions/alerts/)
        "AIRFLOW_CONN_ALERT_ALERTMANAGER": _connection(TOKEN),
        "AIRFLOW_CONN_ALERT_BACKUP_ARRAY": _connection(GH_SECRET),
        "AIRFLOW_CONN_ALERT_SERVICENOW": _connection(STD_SECRET),
        "AIRFLOW__AUTOPILOT__ALERT_MAX_BODY_BYTES": str(MAX_BODY),
        "AIRFLOW__AUTOPILOT__APPROVAL_SWEEP_SECONDS": "0",
    }
    deployment = AirflowStack(home, users=USERS, extra_env=env)
    deployment.start()
    try:
        admin = deployment.client("admin")
        for dag_id in ("alert_sink", "alert_bulk", "add_machine_to_backups", "nightly_disk_report", "hello_world"):
            deployment.wait_for_dag(dag_id)
            # runs are counted, not executed
            for attempt in range(3):
                response = admin.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": True})
                if response.status_code != 500 or attempt == 2:
                    break
                # Airflow on SQLite, while the dag-processor writes its first parse, has answered a
                # rolled back "Database error" (tests/fixtures/airflow_stack.py retries triggers alike)
                print(f"pausing {dag_id} refused, retrying: {deployment.api_error(response.text)}")
            assert response.status_code == 200, f"{response.text}\n{deployment.api_error(response.text)}"
        deployment.wait_for_dag("alert_asset_consumer")
        yield deployment
    finally:
        deployment.stop()
        for name in DEFINITIONS:
            (root / FOLDER / name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def sender(stack) -> httpx.Client:
    """A client without any Airflow credential, as a sender is."""
    return httpx.Client(base_url=stack.api.base_url, timeout=60)


# -- signing, as each sender documents it ---------------------------------------------------------


def _hex(secret: str, content: bytes) -> str:
    return hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()


def github(body: bytes, secret: str = GH_SECRET, delivery: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + _hex(secret, body),
    }


def stripe(body: bytes, secret: str = STRIPE_SECRET, at: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    signature = _hex(secret, f"{stamp}.".encode() + body)
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={stamp},v1={'0' * 64},v1={signature}"}


def standard(body: bytes, key: bytes = STD_KEY, at: int | None = None, ident: str | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if at is None else at)
    ident = ident or f"msg_{uuid.uuid4().hex}"
    signature = base64.b64encode(hmac.new(key, f"{ident}.{stamp}.".encode() + body, hashlib.sha256).digest())
    return {
        "Content-Type": "application/json",
        "webhook-id": ident,
        "webhook-timestamp": stamp,
        "webhook-signature": f"v1,{base64.b64encode(b'old key').decode()} v1,{signature.decode()}",
    }


def bearer(token: str = TOKEN, content_type: str = "application/json", request_id: str | None = None) -> dict:
    return {
        "Content-Type": content_type,
        "Authorization": f"Bearer {token}",
        "X-Request-Id": request_id or str(uuid.uuid4()),
    }


def post(client: httpx.Client, alert: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post(f"{API}/alerts/{alert}", content=body, headers=headers)


def encode(payload: object) -> bytes:
    return json.dumps(payload).encode()


# -- what Airflow holds -----------------------------------------------------------------------------


def run_of(stack: AirflowStack, dag_id: str, run_id: str) -> dict:
    response = stack.client("admin").get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()


def run_count(stack: AirflowStack, dag_id: str) -> int:
    response = stack.client("admin").get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 1})
    assert response.status_code == 200, response.text
    return response.json()["total_entries"]


def logged(stack: AirflowStack, **filters) -> list[dict]:
    response = stack.client("admin").get(f"{API}/alerts/deliveries", params={"limit": 500, **filters})
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


# -- tests ----------------------------------------------------------------------------------------


def test_alerts_are_listed_with_where_to_deliver(stack):
    viewer = stack.client("viewer")
    body = viewer.get(f"{API}/alerts").json()
    ids = [a["id"] for a in body["alerts"]]
    assert {"gh_events", "stripe_events", "am_events", "bulk_events"} <= set(ids)
    gh = next(a for a in body["alerts"] if a["id"] == "gh_events")
    assert gh["scheme"] == "github" and gh["owner"] == "group:platform"
    assert gh["url"] == f"{stack.api.base_url}{API}/alerts/gh_events"
    assert gh["routes"] == [{"id": "sink", "workflow": "alert_sink"}]
    only_bulk = viewer.get(f"{API}/alerts", params={"workflow": "alert_bulk"}).json()
    assert [a["id"] for a in only_bulk["alerts"]] == ["bulk_events"] and only_bulk["total_entries"] == 1


def test_a_github_signed_delivery_starts_the_mapped_run(stack, sender):
    body = encode({"action": "opened", "host": "db01.example.com", "policy": "gold", "count": 3})
    headers = github(body)
    response = post(sender, "gh_events", body, headers)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["alert"] == "gh_events" and answer["status"] == "accepted"
    assert answer["delivery_id"] == headers["X-GitHub-Delivery"]
    [run] = answer["runs"]
    assert run["route"] == "sink" and run["workflow"] == "alert_sink" and run["url"].endswith(run["run_id"])
    found = run_of(stack, "alert_sink", run["run_id"])
    assert found["conf"] == {"hostname": "db01.example.com", "policy": "gold", "count": 3, "ticket": None}
    assert found["triggering_user_name"] == "alice"
    assert "gh_events" in found["note"] and headers["X-GitHub-Delivery"] in found["note"]
    # the run is in the requester's "My requests"
    mine = stack.client("alice").get(f"{API}/requests").json()["requests"]
    assert run["run_id"] in [r["run_id"] for r in mine]


def test_a_stripe_signed_delivery_starts_the_mapped_run(stack, sender):
    event_id = f"evt_{uuid.uuid4().hex}"
    body = encode({"id": event_id, "type": "order.created", "data": {"object": {"host": "web02"}}})
    response = post(sender, "stripe_events", body, stripe(body))
    assert response.status_code == 202, response.text
    assert response.json()["delivery_id"] == event_id  # Stripe's event id
    [run] = response.json()["runs"]
    assert run_of(stack, "alert_sink", run["run_id"])["conf"]["hostname"] == "web02"


def test_a_standard_webhooks_delivery_starts_the_mapped_run(stack, sender):
    body = encode({"host": "app03", "owner": "bob@example.com"})
    headers = standard(body)
    response = post(sender, "std_events", body, headers)
    assert response.status_code == 202, response.text
    [run] = response.json()["runs"]
    found = run_of(stack, "alert_sink", run["run_id"])
    assert found["conf"]["hostname"] == "app03" and found["conf"]["ticket"] == headers["webhook-id"]
    assert found["triggering_user_name"] == "bob"  # the payload named the requester, by e-mail


def test_a_bearer_delivery_in_json_or_form_encoding_starts_the_mapped_run(stack, sender):
    response = post(sender, "bearer_events", encode({"host": "nas01", "count": 2}), bearer())
    assert response.status_code == 202, response.text
    conf = run_of(stack, "alert_sink", response.json()["runs"][0]["run_id"])["conf"]
    assert conf["hostname"] == "nas01" and conf["count"] == 2
    form = urlencode({"host": "nas02", "count": "5"}).encode()
    response = post(sender, "bearer_events", form, bearer(content_type="application/x-www-form-urlencoded"))
    assert response.status_code == 202, response.text
    conf = run_of(stack, "alert_sink", response.json()["runs"][0]["run_id"])["conf"]
    assert conf["hostname"] == "nas02" and conf["count"] == 5


def test_refused_deliveries_get_one_answer_are_logged_and_start_nothing(stack, sender):
    before = run_count(stack, "alert_sink")
    body = encode({"action": "opened", "host": "db09.example.com", "policy": "gold", "count": 1})
    now = int(time.time())
    std_body = encode({"host": "app09", "owner": "alice"})
    stale = standard(std_body, at=now - 3600)
    future = stripe(body, at=now + 3600)
    wrong_key = standard(std_body, key=b"another key")
    cases = {
        "wrong secret": ("gh_events", body, github(body, secret="not-the-secret")),
        "altered body": ("gh_events", body.replace(b"db09", b"db10"), github(body)),
        "stale timestamp": ("std_events", std_body, stale),
        "timestamp in the future": ("stripe_events", body, future),
        "wrong standard key": ("std_events", std_body, wrong_key),
        "missing header": ("gh_events", body, {"Content-Type": "application/json"}),
        "wrong token": ("bearer_events", body, bearer(token="guess")),
        "unknown alert": ("no_such_alert", body, github(body)),
    }
    answers = {what: post(sender, alert, content, headers) for what, (alert, content, headers) in cases.items()}
    assert {what: r.status_code for what, r in answers.items()} == dict.fromkeys(cases, 401)
    assert len({r.content for r in answers.values()}) == 1, "every refusal reads the same"
    assert answers["unknown alert"].json() == {"detail": {"message": "invalid or missing signature"}}
    assert run_count(stack, "alert_sink") == before
    rejected = logged(stack, status="rejected")
    reasons = {(d["alert"], d["reason"]) for d in rejected}
    assert ("gh_events", "X-Hub-Signature-256 does not match the body") in reasons
    assert ("gh_events", "missing header X-Hub-Signature-256") in reasons
    assert ("no_such_alert", "no such alert") in reasons
    assert ("bearer_events", "the bearer token does not match") in reasons
    assert any(a == "std_events" and "outside the tolerance" in r for a, r in reasons)
    assert any(a == "stripe_events" and "outside the tolerance" in r for a, r in reasons)
    assert all(d["runs"] == [] and d["http_status"] == 401 for d in rejected)


def test_a_session_cookie_grants_nothing_on_a_delivery(stack, sender):
    """The endpoint reads no Airflow credential: an admin's cookie (or token) is no signature."""
    body = encode({"action": "opened", "host": "db01", "policy": "gold", "count": 1})
    with httpx.Client(base_url=stack.api.base_url, cookies={"_token": stack.api.token("admin")}) as browser:
        with_cookie = browser.post(
            f"{API}/alerts/gh_events", content=body, headers={"Content-Type": "application/json"}
        )
    assert with_cookie.status_code == 401, with_cookie.text
    as_admin = stack.client("admin").post(
        f"{API}/alerts/gh_events", content=body, headers={"Content-Type": "application/json"}
    )
    assert as_admin.status_code == 401, as_admin.text


def test_the_same_delivery_twice_starts_one_run(stack, sender):
    body = encode({"action": "opened", "host": "db02.example.com", "policy": "silver", "count": 1})
    headers = github(body)
    first = post(sender, "gh_events", body, headers)
    again = post(sender, "gh_events", body, headers)
    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert again.json()["status"] == "duplicate" and again.json()["runs"] == first.json()["runs"]
    statuses = [
        d["status"] for d in logged(stack, alert="gh_events") if d["delivery_id"] == headers["X-GitHub-Delivery"]
    ]
    assert sorted(statuses) == ["accepted", "duplicate"]


def test_a_reused_delivery_id_with_another_body_is_answered_with_the_first_run(stack, sender):
    body = encode({"action": "opened", "host": "db03.example.com", "policy": "silver", "count": 1})
    headers = github(body)
    first = post(sender, "gh_events", body, headers)
    other = encode({"action": "opened", "host": "db04.example.com", "policy": "gold", "count": 1})
    again = post(sender, "gh_events", other, github(other, delivery=headers["X-GitHub-Delivery"]))
    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert again.json()["status"] == "duplicate" and again.json()["runs"] == first.json()["runs"]
    logged_again = [d for d in logged(stack, alert="gh_events") if d["delivery_id"] == headers["X-GitHub-Delivery"]]
    assert any(d["status"] == "duplicate" and "other values" in d["reason"] for d in logged_again), logged_again


def test_200_concurrent_deliveries_with_20_duplicates_start_exactly_180_runs(stack):
    """50 senders at a time; each duplicate is sent right after its original, so the two race."""
    before = run_count(stack, "alert_bulk")
    unique = []
    for n in range(180):
        body = encode({"n": n})
        unique.append((body, github(body)))
    deliveries = []
    for i, item in enumerate(unique):
        deliveries.append(item)
        if i % 9 == 0:  # 20 duplicates
            deliveries.append(item)
    assert len(deliveries) == 200
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    with httpx.Client(base_url=stack.api.base_url, timeout=120, limits=limits) as client:
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(lambda d: post(client, "bulk_events", d[0], d[1]), deliveries))
    assert sorted({r.status_code for r in answers}) in ([200, 202], [202]), [
        r.text for r in answers if r.status_code >= 300
    ]
    by_delivery: dict[str, set[str]] = {}
    for (_, headers), answer in zip(deliveries, answers, strict=True):
        assert answer.status_code in (200, 202), answer.text
        by_delivery.setdefault(headers["X-GitHub-Delivery"], set()).update(r["run_id"] for r in answer.json()["runs"])
    assert len(by_delivery) == 180 and all(len(ids) == 1 for ids in by_delivery.values())
    assert [r.json()["status"] for r in answers].count("accepted") == 180
    assert run_count(stack, "alert_bulk") == before + 180


def test_a_mapping_that_fails_the_form_is_refused_with_field_errors_and_logged(stack, sender):
    before = run_count(stack, "alert_sink")
    body = encode({"action": "opened", "host": "db", "policy": "platinum", "count": 0})
    headers = github(body)
    response = post(sender, "gh_events", body, headers)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert [(e["field"], e["route"]) for e in detail["errors"]] == [
        ("hostname", "sink"),
        ("policy", "sink"),
        ("count", "sink"),
    ]
    assert "platinum" in detail["errors"][1]["message"]
    assert run_count(stack, "alert_sink") == before
    [entry] = [d for d in logged(stack, alert="gh_events") if d["delivery_id"] == headers["X-GitHub-Delivery"]]
    assert entry["status"] == "invalid" and entry["http_status"] == 422 and "policy" in entry["reason"]


def test_match_rules_filter_a_delivery_out(stack, sender):
    body = encode({"action": "closed", "host": "db03", "policy": "gold", "count": 1})
    response = post(sender, "gh_events", body, github(body))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "filtered" and response.json()["runs"] == []


def test_an_alertmanager_delivery_with_two_alerts_starts_two_runs(stack, sender):
    """Alertmanager's webhook payload (version 4): one delivery, several alerts, each an event."""
    group = f'{{}}:{{alertname="DiskFull", run="{uuid.uuid4().hex}"}}'
    payload = {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "autopilot",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "DiskFull", "instance": host, "severity": "critical"},
                "annotations": {"summary": f"{host} is out of disk"},
                "startsAt": "2026-12-07T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example.com:9090/graph",
                "fingerprint": fingerprint,
            }
            for host, fingerprint in (("db01.example.com", "a1b2c3"), ("db02.example.com", "d4e5f6"))
        ],
    }
    response = post(sender, "am_events", encode(payload), bearer())
    assert response.status_code == 202, response.text
    runs = response.json()["runs"]
    assert [r["route"] for r in runs] == ["firing", "firing"] and len({r["run_id"] for r in runs}) == 2
    confs = [run_of(stack, "alert_sink", r["run_id"])["conf"] for r in runs]
    assert [(c["hostname"], c["ticket"], c["policy"]) for c in confs] == [
        ("db01.example.com", "a1b2c3", "gold"),
        ("db02.example.com", "d4e5f6", "gold"),
    ]
    # the same group notified again (Alertmanager's repeat_interval): the same runs, nothing started
    again = post(sender, "am_events", encode(payload), bearer())
    assert again.status_code == 200 and again.json()["runs"] == runs
    # resolved: the other route
    resolved = {**payload, "status": "resolved", "alerts": [{**payload["alerts"][0], "status": "resolved"}]}
    response = post(sender, "am_events", encode(resolved), bearer())
    assert response.status_code == 202, response.text
    assert [r["route"] for r in response.json()["runs"]] == ["resolved"]


def test_wrong_content_type_and_too_large_bodies_are_refused(stack, sender):
    body = b"host=db01"
    response = post(sender, "bearer_events", body, bearer(content_type="text/plain"))
    assert response.status_code == 415, response.text
    assert response.json()["detail"]["field"] == "Content-Type"
    big = encode({"host": "db01", "pad": "x" * MAX_BODY})
    response = post(sender, "bearer_events", big, bearer())
    assert response.status_code == 413, response.text


def test_the_delivery_log_filters_and_masks(stack, sender):
    sent = []
    middle = None
    for n in range(3):
        if n == 2:
            middle = datetime.now(UTC)
        headers = bearer()
        response = post(sender, "bearer_events", encode({"host": f"db4{n}", "count": 1, "api_token": "x"}), headers)
        assert response.status_code == 202, response.text
        sent.append(headers["X-Request-Id"])
    mine = [d for d in logged(stack, alert="bearer_events") if d["delivery_id"] in sent]
    assert [d["delivery_id"] for d in mine] == sent[::-1]  # newest first
    after = logged(stack, alert="bearer_events", status="accepted", since=middle.isoformat())
    assert [d["delivery_id"] for d in after] == [sent[2]]
    before = [d["delivery_id"] for d in logged(stack, alert="bearer_events", until=middle.isoformat())]
    assert sent[0] in before and sent[1] in before and sent[2] not in before
    assert logged(stack, alert="bearer_events", status="rejected", since=middle.isoformat()) == []
    page = (
        stack.client("designer")
        .get(f"{API}/alerts/deliveries", params={"alert": "bearer_events", "limit": 2, "offset": 0})
        .json()
    )
    assert [d["delivery_id"] for d in page["deliveries"]] == [sent[2], sent[1]] and page["total_entries"] >= 3
    detail = stack.client("designer").get(f"{API}/alerts/deliveries/{after[0]['id']}").json()
    assert detail["headers"]["authorization"] == "***" and detail["headers"]["x-request-id"] == sent[2]
    assert detail["payload"] == {"host": "db42", "count": 1, "api_token": "***"}
    assert TOKEN not in json.dumps(detail)
    assert stack.client("viewer").get(f"{API}/alerts/deliveries").status_code == 403
    assert stack.client("admin").get(f"{API}/alerts/deliveries", params={"status": "lost"}).status_code == 422
    naive = stack.client("admin").get(f"{API}/alerts/deliveries", params={"since": "2020-01-01T00:00:00"})
    assert naive.status_code == 200 and naive.json()["total_entries"] >= 3  # a time without a zone is UTC


def test_an_admin_replays_a_delivery_and_a_designer_may_not(stack, sender):
    body = encode({"action": "opened", "host": "db05.example.com", "policy": "bronze", "count": 2})
    headers = github(body)
    original = post(sender, "gh_events", body, headers).json()
    [entry] = [d for d in logged(stack, alert="gh_events") if d["delivery_id"] == headers["X-GitHub-Delivery"]]
    refused = stack.client("designer").post(f"{API}/alerts/deliveries/{entry['id']}/replay")
    assert refused.status_code == 403 and "Autopilot Alerts" in refused.json()["detail"]["message"]
    replay = stack.client("admin").post(f"{API}/alerts/deliveries/{entry['id']}/replay")
    assert replay.status_code == 202, replay.text
    delivery = replay.json()["delivery"]
    assert delivery["replay_of"] == entry["id"] and delivery["status"] == "accepted"
    assert delivery["delivery_id"] == f"{headers['X-GitHub-Delivery']}#replay-1"
    [run] = delivery["runs"]
    assert run["run_id"] != original["runs"][0]["run_id"]
    assert run_of(stack, "alert_sink", run["run_id"])["conf"]["hostname"] == "db05.example.com"
    missing = stack.client("admin").post(f"{API}/alerts/deliveries/999999999/replay")
    assert missing.status_code == 404
    forged = github(body, secret="guess")
    assert post(sender, "gh_events", body, forged).status_code == 401
    [rejected] = [d for d in logged(stack, status="rejected") if d["delivery_id"] == forged["X-GitHub-Delivery"]]
    nothing = stack.client("admin").post(f"{API}/alerts/deliveries/{rejected['id']}/replay")
    assert nothing.status_code == 409, nothing.text


def test_a_route_asset_event_runs_a_plain_dag_scheduled_on_it(stack, sender):
    body = encode({"host": "db06.example.com"})
    headers = github(body)
    response = post(sender, "asset_events", body, headers)
    assert response.status_code == 202, response.text
    [run] = response.json()["runs"]
    admin = stack.client("admin")
    deadline = time.monotonic() + 240
    consumer = []
    while time.monotonic() < deadline:
        consumer = admin.get("/api/v2/dags/alert_asset_consumer/dagRuns").json()["dag_runs"]
        if consumer and consumer[0]["state"] in ("success", "failed"):
            break
        time.sleep(1)
    assert consumer, "the DAG scheduled on the asset never ran"
    assert consumer[0]["run_type"] == "asset_triggered" and consumer[0]["state"] == "success", consumer
    [extra] = stack.xcom("alert_asset_consumer", consumer[0]["dag_run_id"], "consume")
    assert extra["autopilot_alert"] == "asset_events" and extra["run_id"] == run["run_id"]
    assert extra["delivery_id"] == headers["X-GitHub-Delivery"] and extra["event"] == {"host": "db06.example.com"}


def test_old_deliveries_are_purged(stack):
    from autopilot_provider.server.alerts import Deliveries, Outcome, purge_expired

    old = datetime.now(UTC) - timedelta(days=31)
    deliveries = Deliveries(os.environ["AUTOPILOT_DEFINITIONS"], now=lambda: old)
    outcome = deliveries._record(Outcome("filtered", 200, "purge_me", "old-one"), {}, {"x": 1})
    assert deliveries.get(outcome.id)["alert"] == "purge_me"
    assert purge_expired(force=True) >= 1
    assert logged(stack, alert="purge_me") == []


def test_the_shipped_examples_start_their_workflows(stack, sender):
    """definitions/alerts/: a storage array (GitHub-style HMAC), Alertmanager (bearer, for_each) and
    a ServiceNow catalog request (Standard Webhooks), with the payloads docs/alerts.md shows."""
    array = encode(
        {
            "event": "client_missing",
            "severity": "critical",
            "host": "db01.example.com",
            "policy": "gold",
            "message": "db01 has had no backup for 3 days",
        }
    )
    headers = {**github(array), "X-Request-Id": f"evt-{uuid.uuid4().hex}"}
    response = post(sender, "backup_array_events", array, headers)
    assert response.status_code == 202, response.text
    assert response.json()["delivery_id"] == headers["X-Request-Id"]
    found = run_of(stack, "add_machine_to_backups", response.json()["runs"][0]["run_id"])
    assert found["triggering_user_name"] == "svc_storage_array"
    assert found["conf"]["hostname"] == "db01.example.com" and found["conf"]["policy"] == "gold"
    assert found["conf"]["justification"] == "Reported by the backup array: db01 has had no backup for 3 days"

    firing = {
        "version": "4",
        "groupKey": f'{{}}:{{team="ops", run="{uuid.uuid4().hex}"}}',
        "status": "firing",
        "receiver": "autopilot",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "FilesystemAlmostFull", "instance": "db01.example.com", "mountpoint": "/var"},
                "annotations": {"summary": "/var is 91% full"},
                "startsAt": "2026-12-07T10:00:00Z",
                "fingerprint": "0001",
            },
            {
                "status": "firing",
                "labels": {"alertname": "BackupAgentMissing", "instance": "db01.example.com"},
                "annotations": {"summary": "no backup agent on db01"},
                "startsAt": "2026-12-07T10:01:00Z",
                "fingerprint": "0002",
            },
        ],
    }
    response = post(sender, "alertmanager", encode(firing), bearer())
    assert response.status_code == 202, response.text
    runs = {r["route"]: r for r in response.json()["runs"]}
    assert set(runs) == {"check_disk", "back_up"}
    assert run_of(stack, "nightly_disk_report", runs["check_disk"]["run_id"])["conf"]["path"] == "/var"
    backup = run_of(stack, "add_machine_to_backups", runs["back_up"]["run_id"])["conf"]
    assert backup["policy"] == "silver" and backup["justification"] == "Alertmanager: no backup agent on db01"

    item = encode(
        {
            "sys_id": uuid.uuid4().hex,
            "number": "RITM0010042",
            "request": "REQ0010042",
            "cat_item": "add_machine_to_backups",
            "requested_for": "alice",
            "variables": {"hostname": "db01.example.com", "policy": "bronze", "justification": "new database server"},
        }
    )
    response = post(sender, "servicenow_catalog", item, standard(item, ident=json.loads(item)["sys_id"]))
    assert response.status_code == 202, response.text
    found = run_of(stack, "add_machine_to_backups", response.json()["runs"][0]["run_id"])
    assert found["triggering_user_name"] == "alice" and found["conf"]["ticket"] == "RITM0010042"


@pytest.mark.parametrize("scheme", ["github", "stripe", "standard", "bearer"])
def test_the_documented_curl_of_each_sender_is_accepted(stack, scheme):
    """docs/alerts.md's snippets, run as written (bash, openssl, curl) against the deployment."""
    secret = {"github": GH_SECRET, "stripe": STRIPE_SECRET, "standard": STD_SECRET, "bearer": ""}[scheme]
    env = {"PATH": os.environ["PATH"], "AIRFLOW": stack.api.base_url, "SECRET": secret, "TOKEN": TOKEN}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", SNIPPETS[scheme]], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == "accepted" and len(answer["runs"]) == 1, answer


def test_the_definitions_api_lists_and_validates_alerts(stack):
    """Alerts are definitions like the others: listed by kind, validated with located diagnostics."""
    viewer = stack.client("viewer")
    listed = viewer.get(f"{API}/definitions", params={"kind": "Alert"}).json()["definitions"]
    assert {d["id"] for d in listed} >= {"gh_events", "alertmanager", "servicenow_catalog"}
    assert all(d["kind"] == "Alert" and d["valid"] for d in listed)
    text = DEFINITIONS["gh.yaml"].replace("workflow: alert_sink", "workflow: alert_snk").replace("gh_events", "gh_copy")
    answer = viewer.post(
        f"{API}/definitions/validate", json={"path": f"{FOLDER}/gh_copy.yaml", "content": textwrap.dedent(text)}
    ).json()
    assert answer["valid"] is False
    assert [(d["line"], d["message"]) for d in answer["diagnostics"]] == [
        (11, "route 'sink': unknown workflow 'alert_snk' (did you mean 'alert_sink'?)")
    ]
