"""The request portal's API (``/autopilot/api/v1/workflows`` and ``/requests``) against a real
``airflow api-server``, with the DAGs serialized into Airflow's database as the dag-processor does,
and Airflow's own trigger endpoint (``POST /api/v2/dags/{dag_id}/dagRuns``) for comparison.

Users (SimpleAuthManager): admin (admin), editor (user), viewer (viewer). Choices from an API come
from the example backup product (tests/fixtures/backup_product.py), reached through the connection
``backup_api`` stored in Airflow's database. No scheduler runs: started runs stay queued.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.fixtures.backup_product import PASSWORD, backup_product  # noqa: F401 - a fixture

pytestmark = pytest.mark.server

API = "/autopilot/api/v1"

PORTAL_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: portal_hosts
title: Back up a Paris host
description: Choose a host the backup product knows.
tags: [backup, portal-test]
owner: group:storage
form:
  properties:
    hostname:
      type: string
      title: Host
      options: {api: backup_product, operation: listHosts, params: {site: paris}, value: hostname}
      section: Machine
    policy:
      type: string
      title: Policy
      options: {api: backup_product, operation: listPolicies}
      default: silver
      section: Backup
    size_gb: {type: integer, title: Size (GB), minimum: 1, maximum: 100, default: 10, section: Backup}
  required: [hostname, policy]
steps:
  - id: record
    title: Record the request
    script:
      env: {HOST: "{{ form.hostname }}", POLICY: "{{ form.policy }}", SIZE_GB: "{{ form.size_gb }}"}
      bash: echo "$HOST $POLICY $SIZE_GB"
"""

#: Asks the product for a site nobody else asks for, so no cached answer hides its failure.
BROKEN_WF = PORTAL_WF.replace("id: portal_hosts", "id: portal_broken").replace("site: paris", "site: nowhere")
UNPARSED_WF = PORTAL_WF.replace("id: portal_hosts", "id: portal_unparsed").replace("portal-test", "portal-late")


def serialize_dags(definitions: Path) -> None:
    """Parse the Autopilot bundle and store its DAGs in Airflow's database (the dag-processor's job)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    from dag_factory.bundle import AutopilotDagBundle

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    bundle = AutopilotDagBundle(name="autopilot", definitions=str(definitions))
    bundle.initialize()
    bag = DagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name="autopilot")
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "autopilot", None)


@pytest.fixture(scope="module")
def portal(api_server, admin, backup_product):  # noqa: F811 - backup_product is a fixture
    root = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    folder = root / "portal_test"
    folder.mkdir(exist_ok=True)
    (folder / "portal_hosts.yaml").write_text(PORTAL_WF, encoding="utf-8")
    (folder / "portal_broken.yaml").write_text(BROKEN_WF, encoding="utf-8")
    serialize_dags(root)
    # written after the DAGs were stored: a valid workflow Airflow has not parsed yet
    (folder / "portal_unparsed.yaml").write_text(UNPARSED_WF, encoding="utf-8")
    connection = {"connection_id": "backup_api", **backup_product.connection()}
    created = admin.post("/api/v2/connections", json=connection)
    assert created.status_code == 201, created.text
    backup_product.reset()
    yield backup_product
    admin.delete("/api/v2/connections/backup_api")
    shutil.rmtree(folder, ignore_errors=True)


def runs(client, dag_id: str) -> list[dict]:
    response = client.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["dag_runs"]


GOOD_FORM = {"hostname": "db01.example.com", "policy": "gold", "justification": "nightly backups for the db"}
GOOD_BACKUP = {**GOOD_FORM}
GOOD_BACKUP.pop("justification")


# ---------------------------------------------------------------------------------------------
# Authentication and permissions
# ---------------------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", f"{API}/workflows", None),
    ("GET", f"{API}/workflows/portal_hosts/form", None),
    ("POST", f"{API}/workflows/portal_hosts/runs", {"form": GOOD_BACKUP}),
    ("GET", f"{API}/requests", None),
]


@pytest.mark.parametrize(("method", "url", "body"), ENDPOINTS, ids=[f"{m} {u}" for m, u, _ in ENDPOINTS])
def test_every_endpoint_needs_a_token(portal, anonymous, admin, method, url, body):
    before = len(runs(admin, "portal_hosts"))
    assert anonymous.request(method, url, json=body).status_code == 401
    assert len(runs(admin, "portal_hosts")) == before


def test_a_viewer_reads_forms_but_cannot_start_runs(portal, viewer, editor, admin):
    form = viewer.get(f"{API}/workflows/portal_hosts/form")
    assert form.status_code == 200
    # the catalog lists what the viewer may read, and says they may not request it (the UI hides Request)
    assert form.json()["workflow"]["can_request"] is False
    listed = {w["id"]: w for w in viewer.get(f"{API}/workflows").json()["workflows"]}
    assert listed["portal_hosts"]["can_request"] is False
    assert not any(w["can_request"] for w in listed.values())
    for client in (editor, admin):
        assert client.get(f"{API}/workflows/portal_hosts/form").json()["workflow"]["can_request"] is True
        assert all(w["can_request"] for w in client.get(f"{API}/workflows").json()["workflows"])
    before = len(runs(admin, "portal_hosts"))
    response = viewer.post(f"{API}/workflows/portal_hosts/runs", json={"form": GOOD_BACKUP})
    assert response.status_code == 403
    assert response.json()["detail"]["message"] == (
        "you may not start runs of workflow 'portal_hosts': that needs the 'Autopilot Requests' permission "
        "and read access to its runs, or DAG-run create access to it"
    )
    assert len(runs(admin, "portal_hosts")) == before


# ---------------------------------------------------------------------------------------------
# Workflows and forms
# ---------------------------------------------------------------------------------------------


def test_list_workflows_with_search_and_tag(portal, viewer):
    body = viewer.get(f"{API}/workflows").json()
    assert body["total_entries"] == len(body["workflows"])
    by_id = {w["id"]: w for w in body["workflows"]}
    assert {"hello_world", "add_machine_to_backups", "portal_hosts", "portal_unparsed"} <= set(by_id)
    assert by_id["portal_hosts"] == {
        "id": "portal_hosts",
        "title": "Back up a Paris host",
        "description": "Choose a host the backup product knows.",
        "tags": ["backup", "portal-test"],
        "owner": "group:storage",
        "has_form": True,
        "dag_id": "portal_hosts",
        "can_request": False,
    }
    tagged = viewer.get(f"{API}/workflows", params={"tag": "PORTAL-TEST"}).json()
    assert [w["id"] for w in tagged["workflows"]] == ["portal_broken", "portal_hosts"]
    found = viewer.get(f"{API}/workflows", params={"q": "paris knows", "tag": "backup"}).json()
    assert [w["id"] for w in found["workflows"]] == ["portal_broken", "portal_hosts", "portal_unparsed"]


def test_form_of_the_reference_scenario_offers_the_inventory(portal, viewer):
    response = viewer.get(f"{API}/workflows/add_machine_to_backups/form")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["workflow"]["id"] == "add_machine_to_backups" and body["workflow"]["has_form"]
    hostname = body["schema"]["properties"]["hostname"]
    assert hostname["enum"] == ["localhost", "db01.example.com", "no-such-host.invalid"]
    assert body["ui_schema"]["hostname"]["ui:enumNames"] == [
        "localhost (lab)",
        "db01 (Paris database)",
        "old01 (retired)",
    ]
    assert body["ui_schema"]["justification"]["ui:widget"] == "textarea"
    assert body["sections"][0] == {"title": "Machine", "fields": ["hostname"]}


def test_form_with_api_choices_asks_the_product(portal, viewer):
    response = viewer.get(f"{API}/workflows/portal_hosts/form")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schema"]["properties"]["hostname"]["enum"] == ["db01.example.com", "web01.example.com"]
    assert body["schema"]["properties"]["policy"]["enum"] == ["gold", "silver", "bronze"]
    assert body["schema"]["properties"]["policy"]["default"] == "silver"
    assert body["ui_schema"]["policy"]["ui:enumNames"] == [
        "Gold (daily, 90 days)",
        "Silver (daily, 30 days)",
        "Bronze (weekly, 14 days)",
    ]
    assert body["schema"]["required"] == ["hostname", "policy"]
    hosts = portal.received("/hosts")
    assert hosts and hosts[-1].query == {"site": ["paris"]} and hosts[-1].authorization.startswith("Basic ")


def test_an_api_that_fails_gives_502_naming_the_field(portal, viewer):
    portal.listings_fail = True
    try:
        response = viewer.get(f"{API}/workflows/portal_broken/form")
    finally:
        portal.listings_fail = False
    assert response.status_code == 502, response.text
    detail = response.json()["detail"]
    assert detail["field"] == "hostname"
    assert detail["message"].startswith("field 'hostname': cannot fetch its choices: api 'backup_product'")
    assert "answered HTTP 503" in detail["message"] and PASSWORD not in detail["message"]


def test_unknown_workflow_is_404_with_a_suggestion(portal, viewer):
    response = viewer.get(f"{API}/workflows/portal_host/form")
    assert response.status_code == 404
    assert response.json()["detail"]["message"] == "no valid workflow 'portal_host' (did you mean 'portal_hosts'?)"


# ---------------------------------------------------------------------------------------------
# Starting runs
# ---------------------------------------------------------------------------------------------


def test_a_valid_form_starts_a_run_requested_by_the_caller(portal, editor, admin):
    response = editor.post(
        f"{API}/workflows/portal_hosts/runs", json={"form": {"hostname": "web01.example.com"}, "note": "for ticket 42"}
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["dag_id"] == "portal_hosts" and run["state"] == "queued"
    assert run["url"].endswith(f"/dags/portal_hosts/runs/{run['run_id'].replace(':', '%3A').replace('+', '%2B')}")
    stored = admin.get(f"/api/v2/dags/portal_hosts/dagRuns/{run['run_id']}").json()
    assert stored["triggering_user_name"] == "editor"
    assert stored["conf"] == {"hostname": "web01.example.com", "policy": "silver", "size_gb": 10}  # defaults applied
    assert stored["note"] == "for ticket 42"
    assert stored["run_type"] == "manual"

    mine = editor.get(f"{API}/requests").json()
    request = next(r for r in mine["requests"] if r["run_id"] == run["run_id"])
    assert request["title"] == "Back up a Paris host" and request["requester"] == "editor"
    assert request["form"] == stored["conf"] and request["state"] == "queued" and request["url"] == run["url"]
    assert [(s["id"], s["title"]) for s in request["steps"]] == [
        ("_check_form", "Check the request form"),
        ("record", "Record the request"),
    ]
    assert all(s["state"] is None for s in request["steps"])  # no scheduler in this test
    assert request["approvals"] == []  # this workflow asks nobody (tests/test_ui_e2e_requests.py: one that does)
    assert all(r["requester"] == "editor" for r in mine["requests"])
    # the admin started nothing: not theirs; with mine=false they see everybody's runs
    assert run["run_id"] not in {r["run_id"] for r in admin.get(f"{API}/requests").json()["requests"]}
    everybody = admin.get(f"{API}/requests", params={"mine": "false", "limit": 500}).json()
    assert run["run_id"] in {r["run_id"] for r in everybody["requests"]}


def test_a_repeated_idempotency_key_answers_with_the_first_run(portal, editor, viewer, admin):
    """A client that retries a submission whose answer it lost (an API-server restart mid-request)
    sends the same Idempotency-Key: it gets the first run back and no second run exists, even when
    the retries race each other."""
    url = f"{API}/workflows/portal_hosts/runs"
    form = {"form": {"hostname": "web01.example.com", "size_gb": 11}}
    before = {r["dag_run_id"] for r in runs(admin, "portal_hosts")}
    first = editor.post(url, json=form, headers={"Idempotency-Key": "submission-0001"})
    assert first.status_code == 201, first.text
    assert first.json()["created"] is True
    again = editor.post(url, json=form, headers={"Idempotency-Key": "submission-0001"})
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "created": False}

    # ten retries of one new submission at once: one run, every answer names it
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(lambda _: editor.post(url, json=form, headers={"Idempotency-Key": "submission-0002"}), range(10))
        )
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201], [a.text for a in answers]
    assert len({a.json()["run_id"] for a in answers}) == 1

    # the same key with other values is refused, naming the header; nothing is started
    other = editor.post(
        url,
        json={"form": {"hostname": "web01.example.com", "size_gb": 12}},
        headers={"Idempotency-Key": "submission-0001"},
    )
    assert other.status_code == 409, other.text
    assert other.json()["detail"]["field"] == "Idempotency-Key"
    # another user's key never names this user's run
    admins = admin.post(url, json=form, headers={"Idempotency-Key": "submission-0001"})
    assert admins.status_code == 201 and admins.json()["run_id"] != first.json()["run_id"]
    bad = editor.post(url, json=form, headers={"Idempotency-Key": "x" * 256})
    assert bad.status_code == 400 and bad.json()["detail"]["field"] == "Idempotency-Key"

    created = {r["dag_run_id"] for r in runs(admin, "portal_hosts")} - before
    assert created == {first.json()["run_id"], answers[0].json()["run_id"], admins.json()["run_id"]}


def test_an_invalid_form_is_422_per_field_and_starts_nothing(portal, editor, admin):
    before = len(runs(admin, "portal_hosts"))
    response = editor.post(
        f"{API}/workflows/portal_hosts/runs",
        json={"form": {"hostname": "localhost", "policy": "platinum", "size_gb": 0, "colour": "red"}},
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["errors"] == [
        {"field": "colour", "message": "unknown field; the form's fields: hostname, policy, size_gb"},
        {
            "field": "hostname",
            "message": "\"localhost\" is not one of the choices from api 'backup_product' operation 'listHosts'",
        },
        {
            "field": "policy",
            "message": "\"platinum\" is not one of the choices from api 'backup_product' operation 'listPolicies'",
        },
        {"field": "size_gb", "message": "0 is less than the minimum of 1"},
    ]
    assert detail["message"].startswith("the form has 4 invalid fields: colour: unknown field")
    missing = editor.post(f"{API}/workflows/portal_hosts/runs", json={"form": {}})
    assert missing.status_code == 422
    assert missing.json()["detail"]["errors"] == [{"field": "hostname", "message": "is required"}]
    assert len(runs(admin, "portal_hosts")) == before


def test_the_reference_scenario_starts_with_an_inventory_host(portal, editor, admin):
    bad = editor.post(f"{API}/workflows/add_machine_to_backups/runs", json={"form": {**GOOD_FORM, "hostname": "x"}})
    assert bad.status_code == 422
    assert bad.json()["detail"]["errors"] == [
        {"field": "hostname", "message": "\"x\" is not one of the choices from the inventory's 'machine' items"}
    ]
    good = editor.post(f"{API}/workflows/add_machine_to_backups/runs", json={"form": GOOD_FORM})
    assert good.status_code == 201, good.text
    stored = admin.get(f"/api/v2/dags/add_machine_to_backups/dagRuns/{good.json()['run_id']}").json()
    assert stored["conf"] == {**GOOD_FORM, "retention_days": None, "requester": None, "ticket": None}
    assert stored["triggering_user_name"] == "editor"


def test_a_workflow_airflow_has_not_parsed_yet_is_409(portal, editor):
    response = editor.post(f"{API}/workflows/portal_unparsed/runs", json={"form": GOOD_BACKUP})
    assert response.status_code == 409, response.text
    assert "has no DAG in Airflow yet" in response.json()["detail"]["message"]


# ---------------------------------------------------------------------------------------------
# Requests for later: start_at, My requests, cancelling before it starts
# ---------------------------------------------------------------------------------------------


def _ahead(**delta) -> datetime:
    return (datetime.now(UTC) + timedelta(**delta)).replace(microsecond=0)


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def test_a_request_for_later_waits_queued_and_my_requests_says_when_it_starts(portal, editor, admin):
    url = f"{API}/workflows/portal_hosts/runs"
    start_at = _ahead(hours=1)
    paris = start_at.astimezone(timezone(timedelta(hours=2)))  # any offset: the same moment
    response = editor.post(url, json={"form": GOOD_BACKUP, "start_at": paris.isoformat()})
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["state"] == "queued" and _utc(run["scheduled_for"]) == start_at
    # Airflow's own run_after: the scheduler starts no queued run before it
    stored = admin.get(f"/api/v2/dags/portal_hosts/dagRuns/{run['run_id']}").json()
    assert _utc(stored["run_after"]) == start_at and stored["state"] == "queued"
    assert stored["start_date"] is None and stored["triggering_user_name"] == "editor"

    # two requests for the same moment are two runs (Airflow would name both after the moment)
    twin = editor.post(url, json={"form": GOOD_BACKUP, "start_at": start_at.isoformat()})
    assert twin.status_code == 201 and twin.json()["run_id"] != run["run_id"]

    mine = {r["run_id"]: r for r in editor.get(f"{API}/requests", params={"limit": 500}).json()["requests"]}
    later = mine[run["run_id"]]
    assert _utc(later["scheduled_for"]) == start_at and later["state"] == "queued"
    assert later["cancellable"] is True and later["cancelled"] is False and later["start_date"] is None
    # a request to start now is not scheduled for later
    now = editor.post(url, json={"form": GOOD_BACKUP}).json()
    assert now["scheduled_for"] is None
    assert editor.get(f"{API}/requests").json()["requests"][0]["scheduled_for"] is None
    # someone else sees the request, but may not cancel it
    everybody = admin.get(f"{API}/requests", params={"mine": "false", "limit": 500}).json()["requests"]
    assert next(r for r in everybody if r["run_id"] == run["run_id"])["cancellable"] is False

    # a retried submission names the same moment; the same key for another moment is a conflict
    keyed = {"form": GOOD_BACKUP, "start_at": start_at.isoformat()}
    first = editor.post(url, json=keyed, headers={"Idempotency-Key": "later-0001"})
    again = editor.post(url, json=keyed, headers={"Idempotency-Key": "later-0001"})
    assert (first.status_code, again.status_code) == (201, 200) and again.json()["run_id"] == first.json()["run_id"]
    moved = {**keyed, "start_at": (start_at + timedelta(minutes=5)).isoformat()}
    conflict = editor.post(url, json=moved, headers={"Idempotency-Key": "later-0001"})
    assert conflict.status_code == 409 and conflict.json()["detail"]["field"] == "Idempotency-Key"


@pytest.mark.parametrize(
    ("start_at", "message"),
    [
        ("2020-01-01T09:00:00+00:00", "start_at 2020-01-01T09:00:00+00:00 has passed"),
        ("{far}", "is more than 90 days ahead ([autopilot] request_max_ahead_days)"),
        ("{naive}", "start_at needs a time zone"),
    ],
    ids=["past", "too far ahead", "no time zone"],
)
def test_a_start_in_the_past_or_too_far_ahead_is_422_naming_the_field(portal, editor, admin, start_at, message):
    before = len(runs(admin, "portal_hosts"))
    start_at = start_at.format(far=_ahead(days=91).isoformat(), naive=_ahead(hours=1).replace(tzinfo=None).isoformat())
    response = editor.post(f"{API}/workflows/portal_hosts/runs", json={"form": GOOD_BACKUP, "start_at": start_at})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["field"] == "start_at" and message in detail["message"], detail
    # not a date at all: FastAPI's own 422, naming the field too
    garbage = editor.post(f"{API}/workflows/portal_hosts/runs", json={"form": GOOD_BACKUP, "start_at": "soon"})
    assert garbage.status_code == 422 and garbage.json()["detail"][0]["loc"] == ["body", "start_at"]
    assert len(runs(admin, "portal_hosts")) == before


def test_only_the_requester_cancels_a_request_and_only_before_it_starts(portal, editor, viewer, admin):
    url = f"{API}/workflows/portal_hosts/runs"
    start_at = _ahead(hours=2)
    run_id = editor.post(url, json={"form": GOOD_BACKUP, "start_at": start_at.isoformat()}).json()["run_id"]
    cancel = f"{API}/requests/portal_hosts/{run_id}/cancel"

    assert viewer.post(cancel).status_code == 403  # may not even request it
    refused = admin.post(cancel)  # may request it, but it is not theirs
    assert refused.status_code == 403 and refused.json()["detail"]["field"] == "run_id", refused.text
    missing = editor.post(f"{API}/requests/portal_hosts/no_such_run/cancel")
    assert missing.status_code == 404 and missing.json()["detail"]["field"] == "run_id"
    assert admin.get(f"/api/v2/dags/portal_hosts/dagRuns/{run_id}").json()["state"] == "queued"

    done = editor.post(cancel)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["state"], body["cancelled"], body["cancelled_by"]) == ("failed", True, "editor")
    assert _utc(body["scheduled_for"]) == start_at
    # in Airflow: failed and never started, its steps skipped, the note says who and what
    stored = admin.get(f"/api/v2/dags/portal_hosts/dagRuns/{run_id}").json()
    assert stored["state"] == "failed" and stored["start_date"] is None and stored["end_date"] is not None
    assert stored["note"] == f"Cancelled by editor before it started (it was to start at {start_at.isoformat()})."
    tis = admin.get(f"/api/v2/dags/portal_hosts/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    assert {ti["state"] for ti in tis} == {"skipped"}
    mine = next(
        r for r in editor.get(f"{API}/requests", params={"limit": 500}).json()["requests"] if r["run_id"] == run_id
    )
    assert (mine["state"], mine["cancelled"], mine["cancellable"]) == ("failed", True, False)

    again = editor.post(cancel)
    assert again.status_code == 409 and "cancelled already" in again.json()["detail"]["message"]

    # a request that has ended (here: marked success in Airflow) cannot be cancelled
    ended = editor.post(url, json={"form": GOOD_BACKUP, "note": "keep this note"}).json()["run_id"]
    marked = admin.patch(f"/api/v2/dags/portal_hosts/dagRuns/{ended}", json={"state": "success"})
    assert marked.status_code == 200, marked.text
    late = editor.post(f"{API}/requests/portal_hosts/{ended}/cancel")
    assert late.status_code == 409 and "has ended (success)" in late.json()["detail"]["message"], late.text
    # one queued now, cancelled: its own note is kept under the cancellation
    queued = editor.post(url, json={"form": GOOD_BACKUP, "note": "for ticket 7"}).json()["run_id"]
    assert editor.post(f"{API}/requests/portal_hosts/{queued}/cancel").status_code == 200
    note = admin.get(f"/api/v2/dags/portal_hosts/dagRuns/{queued}").json()["note"]
    assert note.startswith("Cancelled by editor before it started") and note.endswith("\n\nfor ticket 7"), note


# ---------------------------------------------------------------------------------------------
# Airflow's own trigger endpoint validates the same Params
# ---------------------------------------------------------------------------------------------


def test_airflow_trigger_endpoint_rejects_a_host_outside_the_inventory(portal, editor, admin):
    before = len(runs(admin, "add_machine_to_backups"))
    response = editor.post(
        "/api/v2/dags/add_machine_to_backups/dagRuns",
        json={"logical_date": None, "conf": {**GOOD_FORM, "hostname": "intruder.example.com"}},
    )
    assert response.status_code == 400, response.text
    assert "Invalid input for param hostname" in response.json()["detail"]
    assert len(runs(admin, "add_machine_to_backups")) == before
    accepted = editor.post(
        "/api/v2/dags/add_machine_to_backups/dagRuns", json={"logical_date": None, "conf": GOOD_FORM}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["triggering_user_name"] == "editor"
