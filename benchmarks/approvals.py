"""3. Approvals: from the deciding vote to the next task, and what many pending approvals cost.

One deployment (``benchmarks.deployment``): a fresh PostgreSQL database, the API server with the
Autopilot plugin, the dag-processor parsing two bundles — the Autopilot bundle and a plain DAG
folder (``LocalDagBundle``) — a scheduler with the LocalExecutor and a triggerer. On Airflow 3.3 a
human-in-the-loop task waits in the ``awaiting_input`` state with no trigger (Airflow's own
``ApprovalOperator`` and Autopilot's approval step alike), so the triggerer is measured but holds no
trigger (the ``trigger`` rows are counted to show it). No SMTP server: the approval mails fail and
are logged as such. Two workflows of the same shape:

* ``ap_approve`` — Autopilot: ``approval (from: [person:approver], quorum: any)`` → ``script``;
* ``af_approve`` — hand-written: Airflow's ``ApprovalOperator`` (assigned to the same user) →
  ``BashOperator``.

**Latency.** Repeatedly (the two alternating): start a run (Airflow REST, as ``admin``), wait until
the approval task is ``awaiting_input`` (and, for Autopilot, in the inbox), wait the configured
``[autopilot] resume_grace_seconds`` plus 5 s (both contenders), then decide as the approver
``dave`` — ``POST /autopilot/api/v1/approvals/{id}/votes`` vs Airflow's
``PATCH /api/v2/dags/{d}/dagRuns/{r}/taskInstances/approve/-1/hitlDetails`` — and read from the
``task_instance`` rows when the next task started (``start_date``). Both paths resume the approval
task (a worker runs its ``execute_complete``), then the scheduler starts the next task: two task
starts and scheduler loops. Reported: medians (and min/max) of vote→next-task start and of the vote
request itself, and the Autopilot/Airflow ratio.

**Pending at scale.** An idle window first (nothing pending), then M runs of ``ap_approve`` started
and left waiting (M = 1,000 full, 30 quick); over a window of the same length with M pending:
task instances ``running`` (worker slots held; sampled every second), ``awaiting_input``, CPU seconds
and RSS of the scheduler (with its executor's worker processes), triggerer, dag-processor and API
server (whose background sweep handles reminders and timeouts), and the latency of the approver's inbox
``GET /autopilot/api/v1/approvals?state=pending`` (p50/p99) — with Airflow's own list of pending
requests ``GET /api/v2/dags/~/dagRuns/~/hitlDetails?response_received=false`` over the same requests
for context. Getting M approvals pending means starting M tasks on this machine: seconds of CPU
each, so full mode takes long (see the README).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.deployment import Deployment, latency_summary, pg_available
from benchmarks.harness import Context

AUTOPILOT_DAG = "ap_approve"
AIRFLOW_DAG = "af_approve"
APPROVER = "dave"
USERS = {"admin": "admin", APPROVER: "user"}
FULL = {"repetitions": 10, "pending": 1000, "window_s": 60, "inbox_calls": 50}
#: seconds past Autopilot's ``[autopilot] resume_grace_seconds`` that both contenders wait between the
#: approval task reaching awaiting_input and the vote (see settle_seconds and measure_latency)
SETTLE_MARGIN_S = 5.0
QUICK = {"repetitions": 3, "pending": 30, "window_s": 20, "inbox_calls": 20}

CONTACTS = f"""\
apiVersion: autopilot/v1
kind: Contacts
id: bench_contacts
people:
  - {{id: approver, name: Dave Okafor, email: dave@example.com, username: {APPROVER}}}
"""
WORKFLOW = f"""\
apiVersion: autopilot/v1
kind: Workflow
id: {AUTOPILOT_DAG}
title: Approve, then act (Autopilot)
steps:
  - id: approve
    approval:
      from: [person:approver]
      quorum: any
  - id: next
    script:
      bash: echo approved
"""
PYTHON_DAG = f'''\
"""Approve, then act — with Airflow's own ApprovalOperator (the baseline of benchmarks/approvals.py)."""

from datetime import datetime, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG

with DAG(
    dag_id={AIRFLOW_DAG!r},
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
):
    approve = ApprovalOperator(
        task_id="approve", subject="Approve?", assigned_users=[{{"id": {APPROVER!r}, "name": {APPROVER!r}}}]
    )
    approve >> BashOperator(task_id="next", bash_command="echo approved")
'''


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------


def run(ctx: Context) -> dict:
    params = dict(QUICK if ctx.quick else FULL)
    base = {"method": __doc__.strip().split("\n\n", 1)[1] if __doc__ else "", "parameters": params}
    why = pg_available()
    if why:
        return {**base, "status": "skipped", "message": f"skipped: {why}"}
    root = ctx.tmp / "approvals"
    definitions, dags = root / "definitions", root / "dags"
    definitions.mkdir(parents=True, exist_ok=True)
    dags.mkdir(parents=True, exist_ok=True)
    (definitions / "contacts.yaml").write_text(CONTACTS, encoding="utf-8")
    (definitions / f"{AUTOPILOT_DAG}.yaml").write_text(WORKFLOW, encoding="utf-8")
    (dags / f"{AIRFLOW_DAG}.py").write_text(PYTHON_DAG, encoding="utf-8")
    deployment = Deployment(ctx, "approvals", definitions=definitions, dags=dags)
    limit = str(params["pending"] + 50)
    env = deployment.env(
        {
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": limit,
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": limit,
            "AIRFLOW__CORE__PARALLELISM": "4",
        }
    )
    ctx.note(
        f"approvals: fresh PostgreSQL database {deployment.database}; api-server, dag-processor, scheduler "
        f"(LocalExecutor), triggerer; {params['repetitions']} votes each way, then {params['pending']} pending "
        "approvals"
    )
    deployment.create()
    try:
        result = deployment.run_child("benchmarks.approvals", [json.dumps(params)], env, timeout=6 * 3600)
    finally:
        deployment.drop()
    result = {**base, "status": "measured", "postgresql": deployment.server_version, **result}
    result["message"] = summary_line(result)
    return result


def summary_line(r: dict) -> str:
    lat = r["latency"]
    scale = r["pending"]
    return (
        f"vote → next task start: Autopilot {lat['autopilot']['vote_to_next_s']['median']:.2f} s, Airflow "
        f"ApprovalOperator {lat['airflow']['vote_to_next_s']['median']:.2f} s (ratio {lat['ratio_median']:.2f}×); "
        f"{scale['pending_reached']} pending: {scale['with_pending']['running_max']} running task instances"
    )


# ---------------------------------------------------------------------------------------------
# Child side: the deployment's environment is os.environ
# ---------------------------------------------------------------------------------------------


def settle_seconds() -> tuple[float, float]:
    """(resume grace, settle wait) in seconds: the wait between an approval task reaching
    awaiting_input and the vote is Autopilot's configured ``[autopilot] resume_grace_seconds`` plus
    ``SETTLE_MARGIN_S``, for both contenders. Read in the child, whose configuration is the deployment's."""
    from autopilot_provider.server.hitl_resume import resume_grace

    grace = resume_grace().total_seconds()
    return grace, grace + SETTLE_MARGIN_S


def _triggerer_alive(db) -> bool:
    cur = db.cursor()
    cur.execute("SELECT count(*) FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
    return cur.fetchone()[0] > 0


def child(params: dict) -> dict:
    from benchmarks.deployment import database, migrate, say
    from tests.fixtures.airflow_stack import AirflowStack

    say("migrating the metadata database")
    migrate()
    stack = AirflowStack(Path(os.environ["AIRFLOW_HOME"]), users=USERS, triggerer=True)
    say("starting api-server, dag-processor, scheduler, triggerer")
    stack.start()
    db = database()
    try:
        for dag_id in (AUTOPILOT_DAG, AIRFLOW_DAG):
            stack.wait_for_dag(dag_id)
        try:
            _wait("the triggerer's heartbeat (job table)", lambda: _triggerer_alive(db), timeout=180, interval=1)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{stack.log_tail('triggerer')}") from None
        grace, settle = settle_seconds()
        out: dict = {
            "triggerer": "running (airflow triggerer); Airflow 3.3 HITL tasks wait in awaiting_input with no "
            "trigger, so it holds none",
            "resume_grace_s": grace,
            "settle_s": settle,
        }
        out["latency"] = measure_latency(stack, db, params["repetitions"], say, settle)
        out["pending"] = measure_pending(stack, db, params, say)
        return out
    finally:
        db.close()
        say("stopping the deployment")
        stack.stop()


def _wait(what: str, probe, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def _ti(db, dag_id: str, run_id: str, task_id: str) -> tuple | None:
    cur = db.cursor()
    cur.execute(
        "SELECT state, start_date, end_date FROM task_instance WHERE dag_id=%s AND run_id=%s AND task_id=%s",
        (dag_id, run_id, task_id),
    )
    return cur.fetchone()


def _wait_ti(db, dag_id: str, run_id: str, task_id: str, test, timeout: float) -> tuple:
    """Poll the task instance row (state, start_date, end_date) until ``test(row)`` holds."""

    def probe():
        row = _ti(db, dag_id, run_id, task_id)
        return row if row is not None and test(row) else None

    return _wait(f"{dag_id} {run_id} {task_id}", probe, timeout)


def measure_latency(stack, db, repetitions: int, say, settle_s: float) -> dict:
    admin, dave = stack.client("admin"), stack.client(APPROVER)
    samples: dict[str, list[dict]] = {"autopilot": [], "airflow": []}
    for rep in range(repetitions + 1):  # the first round is a warm-up, not counted
        order = ("autopilot", "airflow") if rep % 2 == 0 else ("airflow", "autopilot")
        for kind in order:
            dag_id = AUTOPILOT_DAG if kind == "autopilot" else AIRFLOW_DAG
            response = admin.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": {}})
            response.raise_for_status()
            run_id = response.json()["dag_run_id"]
            _wait_ti(db, dag_id, run_id, "approve", lambda row: row[0] == "awaiting_input", 300)
            # A decision within about a second of the task parking races the scheduler: it has not yet
            # handled the executor's "process finished" event of that first execution, and handling it
            # after the resume marks the task failed ("state changed externally") — with Airflow's own
            # ApprovalOperator too. Autopilot therefore records an answer that comes within
            # resume_grace_seconds (default 15 s) of the parking at once but resumes the task only when
            # the grace is over. People take longer than that; both contenders get the same wait, the
            # configured grace plus SETTLE_MARGIN_S.
            time.sleep(settle_s)
            if kind == "autopilot":

                def pending(run_id: str = run_id) -> str | None:
                    answer = dave.get(
                        "/autopilot/api/v1/approvals", params={"state": "pending", "dag_id": AUTOPILOT_DAG}
                    ).json()
                    return next((a["id"] for a in answer["approvals"] if a["run_id"] == run_id), None)

                approval_id = _wait("the request in the Autopilot inbox", pending, timeout=120, interval=0.5)
                url, method, body = f"/autopilot/api/v1/approvals/{approval_id}/votes", "POST", {"decision": "approve"}
            else:
                url = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"
                method, body = "PATCH", {"chosen_options": ["Approve"], "params_input": {}}
            voted_at = datetime.now(UTC)
            start = time.perf_counter()
            response = dave.request(method, url, json=body)
            request_s = time.perf_counter() - start
            if not response.is_success:
                raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:500]}")
            started = _wait_ti(db, dag_id, run_id, "next", lambda row: row[1], 300)[1]
            resumed = _ti(db, dag_id, run_id, "approve")
            following = _ti(db, dag_id, run_id, "next")
            if resumed[0] != "success" or following[0] in ("upstream_failed", "skipped", "failed"):
                raise RuntimeError(
                    f"{dag_id} {run_id}: the approval task ended {resumed[0]}, the next task {following[0]} — "
                    f"not a measurement (task logs under {os.environ['AIRFLOW_HOME']}/logs)"
                )
            sample = {
                "vote_request_s": request_s,
                "vote_to_next_s": (started - voted_at).total_seconds(),
                "vote_to_approval_done_s": (resumed[2] - voted_at).total_seconds() if resumed and resumed[2] else None,
            }
            if rep:
                samples[kind].append(sample)
            say(f"latency {'warm-up' if not rep else f'{rep}/{repetitions}'} {kind}: {sample['vote_to_next_s']:.2f} s")
    out: dict = {}
    for kind, rows in samples.items():
        out[kind] = {key: _stats([r[key] for r in rows if r[key] is not None]) for key in rows[0]}
        out[kind]["raw"] = rows
    out["ratio_median"] = out["autopilot"]["vote_to_next_s"]["median"] / out["airflow"]["vote_to_next_s"]["median"]
    return out


def _stats(values: list[float]) -> dict:
    import statistics

    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def _processes(stack) -> dict:
    import psutil

    procs = {name: p.pid for name, p in stack.processes.items()}
    procs["api-server"] = stack.api.process.pid
    return {name: psutil.Process(pid) for name, pid in procs.items()}


def _usage(root) -> tuple[float, int]:
    """CPU seconds (user + system) and RSS bytes of a process and all its descendants."""
    import psutil

    cpu, rss = 0.0, 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            cpu += times.user + times.system
            rss += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return cpu, rss


def _states(db, dag_id: str) -> dict[str, int]:
    cur = db.cursor()
    cur.execute("SELECT state, count(*) FROM task_instance WHERE dag_id=%s GROUP BY state", (dag_id,))
    return {str(state): n for state, n in cur.fetchall()}


def _running(db) -> int:
    cur = db.cursor()
    cur.execute("SELECT count(*) FROM task_instance WHERE state = 'running'")
    return cur.fetchone()[0]


def _triggers(db) -> int:
    """Rows in Airflow's ``trigger`` table (what a triggerer runs)."""
    cur = db.cursor()
    cur.execute("SELECT count(*) FROM trigger")
    return cur.fetchone()[0]


def window(stack, db, seconds: float) -> dict:
    """CPU and RSS per process over a window, the running task instances and the triggers (max of 1 s
    samples)."""
    procs = _processes(stack)
    before = {name: _usage(p) for name, p in procs.items()}
    start = time.perf_counter()
    running, triggers, rss_max = 0, 0, {name: 0 for name in procs}
    while time.perf_counter() - start < seconds:
        running = max(running, _running(db))
        triggers = max(triggers, _triggers(db))
        for name, p in procs.items():
            rss_max[name] = max(rss_max[name], _usage(p)[1])
        time.sleep(1)
    elapsed = time.perf_counter() - start
    after = {name: _usage(p) for name, p in procs.items()}
    return {
        "window_s": elapsed,
        "running_max": running,
        "triggers_max": triggers,
        "processes": {
            name: {
                "cpu_s": after[name][0] - before[name][0],
                "cpu_percent": (after[name][0] - before[name][0]) / elapsed * 100,
                "rss_mib_max": rss_max[name] / 2**20,
            }
            for name in procs
        },
    }


def inbox(stack, calls: int) -> dict:
    dave, admin = stack.client(APPROVER), stack.client("admin")
    out = {}
    for name, client, url, params in (
        ("autopilot_inbox", dave, "/autopilot/api/v1/approvals", {"state": "pending"}),
        ("airflow_hitl_list", admin, "/api/v2/dags/~/dagRuns/~/hitlDetails", {"response_received": "false"}),
    ):
        client.get(url, params=params).raise_for_status()  # warm-up
        seconds, total = [], None
        for _ in range(calls):
            start = time.perf_counter()
            response = client.get(url, params=params)
            seconds.append(time.perf_counter() - start)
            response.raise_for_status()
            total = response.json().get("total_entries")
        out[name] = {**latency_summary(seconds), "total_entries": total}
    return out


def measure_pending(stack, db, params: dict, say) -> dict:
    m, seconds = params["pending"], params["window_s"]

    def settled() -> bool:
        cur = db.cursor()
        cur.execute("SELECT count(*) FROM task_instance WHERE state IN ('running', 'queued', 'scheduled')")
        return cur.fetchone()[0] == 0

    _wait("the latency runs to finish", settled, timeout=300, interval=1)
    say(f"idle window ({seconds} s, nothing pending)")
    idle = window(stack, db, seconds)
    idle_inbox = inbox(stack, params["inbox_calls"])
    admin = stack.client("admin")
    say(f"starting {m} runs of {AUTOPILOT_DAG}")
    ramp_start = time.perf_counter()
    procs = _processes(stack)
    cpu_before = {name: _usage(p)[0] for name, p in procs.items()}
    for _ in range(m):
        admin.post(f"/api/v2/dags/{AUTOPILOT_DAG}/dagRuns", json={"logical_date": None, "conf": {}}).raise_for_status()
    deadline = time.monotonic() + max(600, m * 20)
    last_note = 0.0
    reached = 0
    while time.monotonic() < deadline:
        reached = _states(db, AUTOPILOT_DAG).get("awaiting_input", 0)
        if reached >= m:
            break
        if time.monotonic() - last_note > 30:
            say(f"  {reached}/{m} approvals pending after {time.perf_counter() - ramp_start:.0f} s")
            last_note = time.monotonic()
        time.sleep(2)
    ramp_s = time.perf_counter() - ramp_start
    ramp_cpu = {name: _usage(p)[0] - cpu_before[name] for name, p in procs.items()}
    say(f"{reached}/{m} pending after {ramp_s:.0f} s; letting the inbox record them")
    dave = stack.client(APPROVER)
    _wait(
        "the inbox to list every pending request",
        lambda: (
            dave.get("/autopilot/api/v1/approvals", params={"state": "pending", "limit": 1}).json()["total_entries"]
            >= reached
        ),
        timeout=600,
        interval=2,
    )
    say(f"window with {reached} pending ({seconds} s)")
    busy = window(stack, db, seconds)
    busy_inbox = inbox(stack, params["inbox_calls"])
    return {
        "pending_requested": m,
        "pending_reached": reached,
        "ramp_s": ramp_s,
        "ramp_cpu_s": ramp_cpu,
        "task_states": _states(db, AUTOPILOT_DAG),
        "idle": {**idle, "inbox": idle_inbox},
        "with_pending": {**busy, "inbox": busy_inbox},
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=1, required=True)
    args = parser.parse_args(argv)
    result = child(json.loads(args.child[0]))
    sys.stdout.write("\n" + json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
