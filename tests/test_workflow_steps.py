"""Workflows as steps in a real deployment: API server, dag-processor, scheduler (LocalExecutor) and
triggerer, each an `airflow` process sharing the metadata database (one deployment for the module).

A `workflow` step starts a run of another workflow through Airflow's own ``TriggerDagRunOperator``:
the run is the same person's request (it shows in their *My requests*), its values are the mapped
ones checked against its form, the step waits for it deferred (no worker slot) and hands its state
and declared outputs to a decision; a retried step finds the run it started instead of starting a
second; a failed run fails the step with the failed steps named, or is an outcome to act on with
``on_failure: continue``; without ``wait`` the step goes on at once. The started runs wait for a
file the test creates, so "still running" never depends on timing.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from tests.fixtures.airflow_stack import AirflowStack

USERS = {"admin": "admin", "alice": "user"}

WORKFLOWS = {
    # the started workflow: waits for a file, then allocates; declares outputs
    "sub_provision": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: sub_provision
        form:
          properties:
            size: {type: integer, minimum: 1}
            flag: {type: string}
            label: {type: string, default: plain}
            requester: {type: string}
          required: [size, flag]
        outputs:
          lun: "lun-{{ steps.allocate.outputs.lun }}"
          label: "{{ form.label }}"
        steps:
          - id: gate
            script:
              env: {FLAG: "{{ form.flag }}"}
              bash: 'for i in $(seq 1 3000); do [ -e "$FLAG" ] && exit 0; sleep 0.2; done; exit 1'
          - id: allocate
            script:
              python: |
                output(lun=form["size"] * 2)
        """,
    "sub_order": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: sub_order
        form:
          properties:
            size: {type: integer}
            flag: {type: string}
          required: [size, flag]
        steps:
          - id: provision
            workflow:
              id: sub_provision
              form: {size: "{{ form.size }}", flag: "{{ form.flag }}"}
              every: 1s
          - id: verdict
            decision:
              if: steps.provision.outputs.state == 'success' and steps.provision.outputs.outputs.lun == 'lun-8'
              then: record
              else: mismatch
          - id: record
            script:
              env: {LUN: "{{ steps.provision.outputs.outputs.lun }}"}
              bash: 'echo "allocated $LUN"'
          - id: mismatch
            script: {bash: 'echo "unexpected outputs" >&2; exit 1'}
        """,
    "sub_fire": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: sub_fire
        form:
          properties:
            flag: {type: string}
          required: [flag]
        steps:
          - id: kick
            workflow:
              id: sub_provision
              form: {size: 1, flag: "{{ form.flag }}", label: fired}
              wait: false
          - id: after
            script:
              env: {CHILD: "{{ steps.kick.outputs.run_id }}"}
              bash: 'output child "$CHILD"'
        """,
    "sub_broken": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: sub_broken
        steps:
          - id: explode
            script: {bash: 'echo "no space left" >&2; exit 3'}
        """,
    "sub_strict": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: sub_strict
        steps:
          - id: run_broken
            workflow: {id: sub_broken, every: 1s}
          - id: never
            script: {bash: echo unreachable}
        """,
    "sub_lenient": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: sub_lenient
        steps:
          - id: run_broken
            workflow: {id: sub_broken, every: 1s, on_failure: continue}
          - id: outcome
            decision:
              if: steps.run_broken.outputs.state == 'failed'
              then: clean_up
              else: carry_on
          - id: clean_up
            script: {bash: echo "cleaning up"}
          - id: carry_on
            script: {bash: echo "carrying on"}
        """,
    "sub_paused": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: sub_paused
        steps:
          - id: noop
            script: {bash: echo "never started"}
        """,
    "sub_to_paused": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: sub_to_paused
        steps:
          - id: start_paused
            workflow: {id: sub_paused}
        """,
    "sub_badform": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: sub_badform
        form:
          properties:
            size: {type: string}
          required: [size]
        steps:
          - id: provision
            workflow:
              id: sub_provision
              form: {size: "{{ form.size }}", flag: /nonexistent}
        """,
}


@pytest.fixture(scope="module")
def stack(airflow_db):
    definitions = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    written = [definitions / f"{name}.yaml" for name in WORKFLOWS]
    for name, text in WORKFLOWS.items():
        (definitions / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    deployment = AirflowStack(Path(os.environ["AIRFLOW_HOME"]), users=USERS, triggerer=True)
    deployment.start()
    try:
        for name in WORKFLOWS:  # the started workflows too: a step cannot start a DAG Airflow does not know yet
            deployment.wait_for_dag(name)
        yield deployment
    finally:
        deployment.stop()
        for path in written:
            path.unlink(missing_ok=True)


def _runs(stack: AirflowStack, dag_id: str) -> list[dict]:
    return stack.client("admin").get(f"/api/v2/dags/{dag_id}/dagRuns").json()["dag_runs"]


def _run(stack: AirflowStack, dag_id: str, run_id: str) -> dict:
    return stack.client("admin").get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()


def _ti(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> dict:
    return stack.client("admin").get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}").json()


def _started_by(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> str:
    """The id of the run that a step of ``run_id`` started (its ``trigger_run_id`` XCom)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        response = stack.client("admin").get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/trigger_run_id",
            params={"deserialize": True},
        )
        if response.status_code == 200:
            return response.json()["value"]
        time.sleep(1)
    raise AssertionError(
        f"{task_id} started no run: {stack.explain(dag_id, run_id)}\n{stack.log_tail('scheduler', 200)}"
    )


def _log_says(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, text: str, try_number: int = 1) -> None:
    """Wait until the task's log holds ``text`` (the log of an ended try can be written a little later)."""
    deadline = time.monotonic() + 60
    log = ""
    while time.monotonic() < deadline:
        log = stack.task_log(dag_id, run_id, task_id, try_number)
        if text in log:
            return
        time.sleep(1)
    raise AssertionError(f"{task_id} try {try_number} never logged {text!r}:\n{log[-3000:]}")


def _clear(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> None:
    cleared = stack.client("admin").post(
        f"/api/v2/dags/{dag_id}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": run_id, "task_ids": [task_id], "only_failed": False},
    )
    assert cleared.status_code == 200, cleared.text


def _wait_for_try(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, try_number: int) -> None:
    deadline = time.monotonic() + 240
    while _ti(stack, dag_id, run_id, task_id)["try_number"] < try_number:
        assert time.monotonic() < deadline, f"try {try_number} never started: {stack.explain(dag_id, run_id)}"
        time.sleep(1)


def test_a_waiting_step_holds_no_slot_and_hands_the_outcome_and_outputs_on(stack, tmp_path):
    flag = tmp_path / "provision.go"
    run_id = stack.trigger("sub_order", {"size": 4, "flag": str(flag)}, as_user="alice")
    child = _started_by(stack, "sub_order", run_id, "provision")

    # the started run waits for the flag; meanwhile the step is deferred: the triggerer holds the
    # wait, no worker slot and none of the pool's slots
    stack.wait_for_task("sub_order", run_id, "provision", {"deferred"})
    stack.wait_for_task("sub_provision", child, "gate", {"running"})
    assert stack.task_states("sub_order", run_id)["provision"] == "deferred"
    pool = stack.client("admin").get("/api/v2/pools/default_pool").json()
    assert pool["deferred_slots"] >= 1 and not pool["include_deferred"], pool

    # the started run is alice's request, with the mapped values checked and completed like the
    # portal's (the default filled in, the requester carried over)
    started = _run(stack, "sub_provision", child)
    assert started["triggering_user_name"] == "alice"
    assert started["conf"] == {"size": 4, "flag": str(flag), "label": "plain", "requester": "alice"}
    mine = stack.client("alice").get("/autopilot/api/v1/requests", params={"mine": True}).json()["requests"]
    assert {(r["dag_id"], r["run_id"]) for r in mine} >= {("sub_order", run_id), ("sub_provision", child)}

    # a step cleared while it waits (a new try) waits again for the same run
    _clear(stack, "sub_order", run_id, "provision")
    _wait_for_try(stack, "sub_order", run_id, "provision", 2)
    stack.wait_for_task("sub_order", run_id, "provision", {"deferred"})

    flag.touch()
    assert stack.wait_for_run("sub_order", run_id) == "success", stack.explain("sub_order", run_id)
    assert stack.run_state("sub_provision", child) == "success"
    assert _ti(stack, "sub_order", run_id, "provision")["try_number"] == 2
    outputs = stack.xcom("sub_order", run_id, "provision")
    assert outputs == {
        "workflow": "sub_provision",
        "run_id": child,
        "state": "success",
        "outputs": {"lun": "lun-8", "label": "plain"},
    }
    states = stack.task_states("sub_order", run_id)
    assert (states["record"], states["mismatch"]) == ("success", "skipped"), states

    # cleared after the run ended, it reads how that run ended: no second run, the same outcome
    _clear(stack, "sub_order", run_id, "provision")
    _wait_for_try(stack, "sub_order", run_id, "provision", 3)
    assert stack.wait_for_run("sub_order", run_id) == "success", stack.explain("sub_order", run_id)
    assert stack.xcom("sub_order", run_id, "provision") == outputs
    assert [r["dag_run_id"] for r in _runs(stack, "sub_provision") if "sub_order" in r["dag_run_id"]] == [child]


def test_a_failed_run_fails_the_step_naming_its_failed_steps_or_is_an_outcome_to_act_on(stack):
    """Or nothing starts: values that do not fit the form, a paused workflow."""
    paused = stack.client("admin").patch("/api/v2/dags/sub_paused", json={"is_paused": True})
    assert paused.status_code == 200, paused.text
    to_paused = stack.trigger("sub_to_paused", {}, as_user="alice")
    strict = stack.trigger("sub_strict", {}, as_user="alice")
    lenient = stack.trigger("sub_lenient", {}, as_user="alice")
    badform = stack.trigger("sub_badform", {"size": "many"}, as_user="alice")

    assert stack.wait_for_run("sub_strict", strict) == "failed"
    states = stack.task_states("sub_strict", strict)
    assert (states["run_broken"], states["never"]) == ("failed", "upstream_failed"), states
    child = _started_by(stack, "sub_strict", strict, "run_broken")
    assert stack.run_state("sub_broken", child) == "failed"
    _log_says(
        stack, "sub_strict", strict, "run_broken", f"workflow 'sub_broken' ended failed: run {child} (failed: explode)"
    )
    assert _ti(stack, "sub_strict", strict, "run_broken")["try_number"] == 1  # failed for good: no retry

    assert stack.wait_for_run("sub_lenient", lenient) == "success", stack.explain("sub_lenient", lenient)
    outputs = stack.xcom("sub_lenient", lenient, "run_broken")
    assert (outputs["workflow"], outputs["state"], outputs["outputs"]) == ("sub_broken", "failed", {})
    states = stack.task_states("sub_lenient", lenient)
    assert (states["clean_up"], states["carry_on"]) == ("success", "skipped"), states

    # values that do not fit the started workflow's form start nothing
    assert stack.wait_for_run("sub_badform", badform) == "failed"
    _log_says(stack, "sub_badform", badform, "provision", "the form of workflow 'sub_provision' is invalid")
    _log_says(stack, "sub_badform", badform, "provision", "size: 'many' is not of type 'integer'")
    assert not [r for r in _runs(stack, "sub_provision") if "sub_badform" in r["dag_run_id"]]

    # a paused workflow would never run: nothing is started, and the step says why
    assert stack.wait_for_run("sub_to_paused", to_paused) == "failed"
    _log_says(stack, "sub_to_paused", to_paused, "start_paused", "workflow 'sub_paused' is paused in Airflow")
    assert _runs(stack, "sub_paused") == []


def test_a_step_that_does_not_wait_goes_on_while_the_run_it_started_runs(stack, tmp_path):
    flag = tmp_path / "fire.go"
    run_id = stack.trigger("sub_fire", {"flag": str(flag)}, as_user="alice")
    # the started run cannot end before the flag exists, so this run ends first
    assert stack.wait_for_run("sub_fire", run_id) == "success", stack.explain("sub_fire", run_id)
    outputs = stack.xcom("sub_fire", run_id, "kick")
    child = outputs["run_id"]
    assert outputs == {"workflow": "sub_provision", "run_id": child, "state": "queued", "outputs": {}}
    assert _run(stack, "sub_provision", child)["triggering_user_name"] == "alice"
    assert stack.run_state("sub_provision", child) in ("queued", "running")
    assert stack.xcom("sub_fire", run_id, "after") == {"child": child}
    flag.touch()
    assert stack.wait_for_run("sub_provision", child) == "success", stack.explain("sub_provision", child)
    assert stack.xcom("sub_provision", child, "_outputs") == {"lun": "lun-2", "label": "fired"}
