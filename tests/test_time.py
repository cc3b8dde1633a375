"""Waits in time and asset schedules in a real deployment: API server, dag-processor, scheduler
(LocalExecutor) and triggerer, each an `airflow` process sharing the metadata database.

A `wait` in time is deferred to Airflow's ``DateTimeTrigger``: while it waits its task instance is
``deferred`` (no worker slot, none of the pool's slots), it completes once the moment has passed, it
survives a triggerer that is stopped through the moment and started again, and a cleared task (a
new try) waits for the moment the first try worked out. A window referenced on an inventory item
resolves there. A request for later (``start_at``) starts at its time, and one its requester
cancelled never starts. Asset schedules chain both ways with plain Airflow DAGs (a second DAG bundle holds
two hand-written ones): a plain DAG's outlet starts an Autopilot workflow, and an Autopilot step's
``outlets`` start a plain DAG scheduled on that asset.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.fixtures.airflow_stack import AirflowStack

USERS = {"admin": "admin", "alice": "user"}

WORKFLOWS = {
    "time_until": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: time_until
        form:
          properties:
            start_at: {type: string, title: Not before}
          required: [start_at]
        steps:
          - id: hold
            wait: {until: "{{ form.start_at }}"}
          - id: go
            script:
              env: {AT: "{{ steps.hold.outputs.at }}"}
              bash: echo "went at $AT"
        """,
    "time_for": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: time_for
        form:
          properties:
            label: {type: string, default: x}
        steps:
          - id: pause
            wait: {for: 12s}
        """,
    "time_window": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: time_window
        steps:
          - id: in_window
            wait: {window: {resource: maint01, id: often}}
        """,
    "time_later": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: time_later
        form:
          properties:
            label: {type: string, default: x}
        steps:
          - id: go
            script:
              env: {LABEL: "{{ form.label }}"}
              bash: echo "started $LABEL"
        """,
    "time_asset_consumer": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: time_asset_consumer
        schedule: {assets: {any: ["autopilot://test/from_plain", "autopilot://test/never_updated"]}}
        steps:
          - id: react
            script: {bash: echo "an asset was updated"}
        """,
    "time_asset_producer": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: time_asset_producer
        steps:
          - id: publish
            script: {bash: echo "publishing"}
            outlets: ["autopilot://test/from_autopilot"]
        """,
}

INVENTORY = """\
    apiVersion: autopilot/v1
    kind: Resources
    id: time_inventory
    items:
      - id: maint01
        type: machine
        maintenance_windows:
          - {id: new_year, cron: "0 0 1 1 *", duration: 1h}
          # opens every 20 seconds, for 8 (a sixth cron field gives seconds)
          - {id: often, cron: "* * * * * */20", duration: 8s}
    """

PLAIN_DAGS = """\
    from airflow.sdk import DAG, Asset
    from airflow.providers.standard.operators.empty import EmptyOperator

    with DAG("plain_producer", schedule=None, tags=["plain"]):
        EmptyOperator(task_id="produce", outlets=[Asset("autopilot://test/from_plain")])

    with DAG("plain_consumer", schedule=[Asset("autopilot://test/from_autopilot")], tags=["plain"]):
        EmptyOperator(task_id="consume")
    """


@pytest.fixture(scope="module")
def stack(airflow_db):
    definitions = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    written = [definitions / f"{name}.yaml" for name in WORKFLOWS] + [definitions / "time_inventory.yaml"]
    for name, text in WORKFLOWS.items():
        (definitions / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    (definitions / "time_inventory.yaml").write_text(textwrap.dedent(INVENTORY), encoding="utf-8")
    home = Path(os.environ["AIRFLOW_HOME"])
    plain = home / "plain_dags"
    plain.mkdir(exist_ok=True)
    (plain / "plain_dags.py").write_text(textwrap.dedent(PLAIN_DAGS), encoding="utf-8")
    bundles = json.loads(os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"]) + [
        {
            "name": "plain",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(plain), "refresh_interval": 2},
        }
    ]
    env = {"AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles)}
    deployment = AirflowStack(home, users=USERS, extra_env=env, triggerer=True)
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()
        for path in written:
            path.unlink(missing_ok=True)
        (plain / "plain_dags.py").unlink(missing_ok=True)


def _ti(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> dict:
    return stack.client("admin").get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}").json()


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _until(moment: datetime, timeout: float = 120) -> None:
    """Wait (polling the clock) until ``moment`` has passed."""
    deadline = time.monotonic() + timeout
    while datetime.now(UTC) <= moment:
        assert time.monotonic() < deadline, f"{moment} never came"
        time.sleep(0.5)


def _wait_for_dag_run(stack: AirflowStack, dag_id: str, timeout: float = 180) -> dict:
    """The first run of ``dag_id`` once it has finished."""
    stack.wait_for_dag(dag_id)
    admin = stack.client("admin")
    deadline = time.monotonic() + timeout
    runs: list = []
    while time.monotonic() < deadline:
        runs = admin.get(f"/api/v2/dags/{dag_id}/dagRuns").json()["dag_runs"]
        if runs and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(1)
    raise AssertionError(f"{dag_id} has no finished run: {runs}\n{stack.log_tail('scheduler')}")


def test_wait_until_defers_holding_no_slot_and_goes_at_the_moment(stack):
    stack.wait_for_dag("time_until")
    # The moment must still be ahead when the task starts; a loaded machine can take long to start
    # it, so a run whose moment came first is not a verdict: try again with more time ahead.
    for ahead in (35, 90, 240):
        moment = (datetime.now(UTC) + timedelta(seconds=ahead)).replace(microsecond=0)
        run_id = stack.trigger("time_until", {"start_at": moment.isoformat()}, as_user="alice")
        state = stack.wait_for_task("time_until", run_id, "hold", {"deferred", "success"}, timeout=ahead + 240)
        # deferred: the triggerer holds the wait; no worker slot, no pool slot
        pool = stack.client("admin").get("/api/v2/pools/default_pool").json()
        if state == "deferred" and datetime.now(UTC) < moment:
            break
        stack.wait_for_run("time_until", run_id)
    else:
        raise AssertionError("the task never started before its moment, even 240 s ahead")
    assert pool["deferred_slots"] >= 1 and not pool["include_deferred"], pool
    assert stack.wait_for_run("time_until", run_id) == "success", stack.explain("time_until", run_id)
    hold = _ti(stack, "time_until", run_id, "hold")
    assert _when(hold["end_date"]) >= moment
    assert stack.xcom("time_until", run_id, "hold") == {"at": moment.isoformat()}
    assert stack.task_states("time_until", run_id)["go"] == "success"


def test_wait_for_survives_a_triggerer_stopped_through_the_moment(stack):
    run_id = stack.trigger("time_for", {}, as_user="alice")
    stack.wait_for_task("time_for", run_id, "pause", {"deferred"})
    started = _when(_ti(stack, "time_for", run_id, "pause")["start_date"])
    stack.stop_triggerer()
    try:
        _until(started + timedelta(seconds=14))
        # nobody runs the trigger: the task still waits, deferred, past its moment
        assert stack.task_states("time_for", run_id)["pause"] == "deferred"
    finally:
        stack.start_triggerer()
    assert stack.wait_for_run("time_for", run_id) == "success", stack.explain("time_for", run_id)
    at = _when(stack.xcom("time_for", run_id, "pause")["at"])
    assert timedelta(seconds=12) <= at - started < timedelta(seconds=16)


def test_a_new_try_keeps_the_clock_of_the_first(stack):
    """`for` counts from the step's first start: the moment is kept in Airflow's task state store,
    which the tries of a task share, so clearing the deferred task (a second try) does not restart it."""
    run_id = stack.trigger("time_for", {"label": "retry"}, as_user="alice")
    stack.wait_for_task("time_for", run_id, "pause", {"deferred"})
    first_start = _when(_ti(stack, "time_for", run_id, "pause")["start_date"])
    _until(first_start + timedelta(seconds=6))
    cleared = stack.client("admin").post(
        "/api/v2/dags/time_for/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": run_id, "task_ids": ["pause"], "only_failed": False},
    )
    assert cleared.status_code == 200, cleared.text
    deadline = time.monotonic() + 120
    while _ti(stack, "time_for", run_id, "pause")["try_number"] < 2:
        assert time.monotonic() < deadline, "the cleared task never started again"
        time.sleep(0.5)
    assert stack.wait_for_run("time_for", run_id) == "success", stack.explain("time_for", run_id)
    ti = _ti(stack, "time_for", run_id, "pause")
    assert ti["try_number"] == 2
    at = _when(stack.xcom("time_for", run_id, "pause")["at"])
    assert timedelta(seconds=12) <= at - first_start < timedelta(seconds=16)  # not 12 s after the second try
    assert _when(ti["end_date"]) >= at


def test_a_window_referenced_on_an_inventory_item_resolves_there(stack):
    run_id = stack.trigger("time_window", {}, as_user="alice")
    assert stack.wait_for_run("time_window", run_id) == "success", (
        stack.explain("time_window", run_id) + stack.log_tail("scheduler", 150) + stack.log_tail("triggerer", 80)
    )
    outputs = stack.xcom("time_window", run_id, "in_window")
    assert outputs["window"] == "inventory item 'maint01' window 'often'"
    opened, closes = _when(outputs["at"]), _when(outputs["window_end"])
    assert opened.second % 20 == 0 and closes - opened == timedelta(seconds=8)
    ended = _when(_ti(stack, "time_window", run_id, "in_window")["end_date"])
    assert opened <= ended  # it went once the window had opened (at once when it already was)


def test_a_plain_dags_outlet_starts_an_asset_scheduled_workflow(stack):
    stack.wait_for_dag("time_asset_consumer")
    run_id = stack.trigger("plain_producer", {}, as_user="admin")
    assert stack.wait_for_run("plain_producer", run_id) == "success"
    run = _wait_for_dag_run(stack, "time_asset_consumer")
    assert run["run_type"] == "asset_triggered" and run["state"] == "success", run


def test_a_steps_outlets_start_a_plain_dag_scheduled_on_the_asset(stack):
    stack.wait_for_dag("plain_consumer")
    run_id = stack.trigger("time_asset_producer", {}, as_user="alice")
    assert stack.wait_for_run("time_asset_producer", run_id) == "success"
    run = _wait_for_dag_run(stack, "plain_consumer")
    assert run["run_type"] == "asset_triggered" and run["state"] == "success", run
    events = stack.client("admin").get("/api/v2/assets/events", params={"source_dag_id": "time_asset_producer"})
    assert [e["source_task_id"] for e in events.json()["asset_events"]] == ["publish"]


def test_a_request_for_later_starts_at_its_time_and_a_cancelled_one_never_does(stack):
    stack.wait_for_dag("time_later")
    alice, admin = stack.client("alice"), stack.client("admin")
    url = "/autopilot/api/v1/workflows/time_later/runs"

    # The cancellation must land before the first request's time; a loaded machine can be slower
    # than that, so a request that started first is not a verdict: try again with more time ahead.
    def post(path: str, body: dict | None = None, key: str | None = None) -> httpx.Response:
        # Airflow on SQLite under load has answered a rolled back "Database error" (see
        # AirflowStack.trigger): the Idempotency-Key makes a retry of a request safe, and a retried
        # cancellation finds the first one done
        for attempt in range(3):
            response = alice.post(path, json=body, headers={"Idempotency-Key": key} if key else None)
            if response.status_code != 500 or attempt == 2:
                return response
            print(f"{path} answered 500, retrying: {stack.api_error(response.text) or response.text}")
        raise AssertionError("unreachable")

    for ahead in (20, 60, 180):
        cancelled_at = (datetime.now(UTC) + timedelta(seconds=ahead)).replace(microsecond=0)
        kept_at = cancelled_at + timedelta(seconds=5)  # after the cancelled one's time
        dropped = post(url, {"form": {"label": "dropped"}, "start_at": cancelled_at.isoformat()}, f"dropped-{ahead}")
        kept = post(url, {"form": {"label": "kept"}, "start_at": kept_at.isoformat()}, f"kept-{ahead}")
        assert dropped.status_code in (200, 201) and kept.status_code in (200, 201), dropped.text + kept.text
        dropped_id, kept_id = dropped.json()["run_id"], kept.json()["run_id"]
        mine = {r["run_id"]: r for r in alice.get("/autopilot/api/v1/requests").json()["requests"]}
        assert _when(mine[kept_id]["scheduled_for"]) == kept_at and mine[kept_id]["cancellable"]
        cancel = post(f"/autopilot/api/v1/requests/time_later/{dropped_id}/cancel")
        if cancel.status_code == 200 or "cancelled already" in cancel.text:
            break
        assert cancel.status_code == 409, cancel.text  # it had started already: again, further ahead
    else:
        raise AssertionError("the request started before it could be cancelled, even 180 s ahead")

    # the kept request runs, starting no earlier than its time (Airflow's run_after)
    assert stack.wait_for_run("time_later", kept_id, timeout=ahead + 240) == "success", stack.explain(
        "time_later", kept_id
    )
    started = admin.get(f"/api/v2/dags/time_later/dagRuns/{kept_id}").json()
    assert _when(started["start_date"]) >= kept_at, started
    assert stack.task_states("time_later", kept_id) == {"go": "success"} and started["conf"] == {"label": "kept"}
    # the cancelled one's time came before the kept one's: it never started and never will
    gone = admin.get(f"/api/v2/dags/time_later/dagRuns/{dropped_id}").json()
    assert gone["state"] == "failed" and gone["start_date"] is None, gone
    assert stack.task_states("time_later", dropped_id) == {"go": "skipped"}
    mine = {r["run_id"]: r for r in alice.get("/autopilot/api/v1/requests").json()["requests"]}
    assert (mine[dropped_id]["cancelled"], mine[kept_id]["cancelled"]) == (True, False)
    assert mine[kept_id]["state"] == "success" and not mine[kept_id]["cancellable"]
