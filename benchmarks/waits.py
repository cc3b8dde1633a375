"""5. Waits in time: many runs waiting on a `wait: {until: …}` step, next to Airflow's own
``DateTimeSensorAsync`` doing the same waits.

One deployment (``benchmarks.deployment``): a fresh PostgreSQL database, the API server with the
Autopilot plugin, the dag-processor parsing the Autopilot bundle and a plain DAG folder, a scheduler
with the LocalExecutor (4 slots) and a triggerer. Two workflows of the same shape, both with a
``start_at`` value in the run's conf:

* ``ap_wait`` — Autopilot: ``wait: {until: "{{ form.start_at }}"}`` → ``script``;
* ``af_wait`` — hand-written: ``DateTimeSensorAsync(target_time="{{ dag_run.conf.start_at }}")`` →
  ``BashOperator``.

For each contender in turn (Autopilot first): an idle window, then M runs started through Airflow's
REST API (M = 1,000 full, 30 quick) whose ``start_at`` lies far enough ahead that every run is
deferred before it comes; the time until all M wait tasks are ``deferred`` (ramp); then a window
with the M waits pending: task instances ``running`` (worker slots held, sampled every second),
rows in Airflow's ``trigger`` table, CPU seconds and RSS of the triggerer (and of the scheduler,
dag-processor and API server). Then the moment is moved out of the way: the remaining runs are
marked failed through the REST API, so the next contender starts from an empty triggerer. Reported:
slots held (the claim: 0), triggers, the triggerer's CPU % and RSS with M waits against idle, and
the Autopilot/Airflow ratios of the triggerer's CPU and RSS growth and of the ramp.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.approvals import _processes, _states, _triggerer_alive, _usage, _wait, window
from benchmarks.deployment import Deployment, pg_available
from benchmarks.harness import Context

AUTOPILOT_DAG = "ap_wait"
AIRFLOW_DAG = "af_wait"
CONTENDERS = (AUTOPILOT_DAG, AIRFLOW_DAG)
USERS = {"admin": "admin"}
FULL = {"waiting": 1000, "window_s": 60}
QUICK = {"waiting": 30, "window_s": 20}
#: the wait's moment lies this far past the expected end of the ramp (seconds per run, at least)
RAMP_ALLOWANCE_S_PER_RUN = 3.0

WORKFLOW = f"""\
apiVersion: autopilot/v1
kind: Workflow
id: {AUTOPILOT_DAG}
title: Wait until a moment, then act (Autopilot)
form:
  properties:
    start_at: {{type: string, title: Not before}}
  required: [start_at]
steps:
  - id: hold
    wait: {{until: "{{{{ form.start_at }}}}"}}
  - id: next
    script:
      bash: echo waited
"""
PYTHON_DAG = f'''\
"""Wait until a moment, then act — with Airflow's own DateTimeSensorAsync (the baseline of benchmarks/waits.py)."""

from datetime import datetime, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG

with DAG(
    dag_id={AIRFLOW_DAG!r},
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
):
    hold = DateTimeSensorAsync(task_id="hold", target_time="{{{{ dag_run.conf['start_at'] }}}}")
    hold >> BashOperator(task_id="next", bash_command="echo waited")
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
    root = ctx.tmp / "waits"
    definitions, dags = root / "definitions", root / "dags"
    definitions.mkdir(parents=True, exist_ok=True)
    dags.mkdir(parents=True, exist_ok=True)
    (definitions / f"{AUTOPILOT_DAG}.yaml").write_text(WORKFLOW, encoding="utf-8")
    (dags / f"{AIRFLOW_DAG}.py").write_text(PYTHON_DAG, encoding="utf-8")
    deployment = Deployment(ctx, "waits", definitions=definitions, dags=dags)
    limit = str(params["waiting"] + 50)
    env = deployment.env(
        {
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": limit,
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": limit,
            "AIRFLOW__CORE__PARALLELISM": "4",
        }
    )
    ctx.note(
        f"waits: fresh PostgreSQL database {deployment.database}; api-server, dag-processor, scheduler "
        f"(LocalExecutor, 4 slots), triggerer; {params['waiting']} waiting runs per contender"
    )
    deployment.create()
    try:
        result = deployment.run_child("benchmarks.waits", [json.dumps(params)], env, timeout=6 * 3600)
    finally:
        deployment.drop()
    result = {**base, "status": "measured", "postgresql": deployment.server_version, **result}
    result["message"] = summary_line(result)
    return result


def summary_line(r: dict) -> str:
    ap, af = r["by_contender"][AUTOPILOT_DAG], r["by_contender"][AIRFLOW_DAG]
    return (
        f"{ap['deferred_reached']} waits (Autopilot wait: until) vs {af['deferred_reached']} "
        f"(DateTimeSensorAsync): worker slots held {ap['waiting']['running_max']} vs "
        f"{af['waiting']['running_max']}; triggerer +{ap['triggerer_rss_growth_mib']:.0f} MiB vs "
        f"+{af['triggerer_rss_growth_mib']:.0f} MiB, CPU {ap['triggerer_cpu_percent']:.1f} % vs "
        f"{af['triggerer_cpu_percent']:.1f} %; ramp {ap['ramp_s']:.0f} s vs {af['ramp_s']:.0f} s"
    )


def ratios(ap: dict, af: dict) -> dict:
    """Autopilot's against Airflow's (lower is better for all three)."""

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    return {
        "triggerer_cpu": ratio(ap["triggerer_cpu_percent"], af["triggerer_cpu_percent"]),
        "triggerer_rss_growth": ratio(ap["triggerer_rss_growth_mib"], af["triggerer_rss_growth_mib"]),
        "ramp": ratio(ap["ramp_s"], af["ramp_s"]),
    }


# ---------------------------------------------------------------------------------------------
# Child side: the deployment's environment is os.environ
# ---------------------------------------------------------------------------------------------


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
        for dag_id in CONTENDERS:
            stack.wait_for_dag(dag_id)
        try:
            _wait("the triggerer's heartbeat (job table)", lambda: _triggerer_alive(db), timeout=180, interval=1)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{stack.log_tail('triggerer')}") from None
        out: dict = {"by_contender": {}}
        for dag_id in CONTENDERS:
            out["by_contender"][dag_id] = measure(stack, db, dag_id, params, say)
        out["ratios"] = ratios(out["by_contender"][AUTOPILOT_DAG], out["by_contender"][AIRFLOW_DAG])
        return out
    finally:
        db.close()
        say("stopping the deployment")
        stack.stop()


def _holds(db, dag_id: str) -> dict[str, int]:
    """The wait tasks' states: how many are deferred, and how many ended without waiting (failed,
    upstream_failed), which will never be deferred."""
    cur = db.cursor()
    cur.execute(
        "SELECT state, count(*) FROM task_instance WHERE dag_id=%s AND task_id='hold' GROUP BY state", (dag_id,)
    )
    return {str(state): n for state, n in cur.fetchall()}


def _quiet(db) -> bool:
    cur = db.cursor()
    cur.execute("SELECT count(*) FROM task_instance WHERE state IN ('running', 'queued', 'scheduled', 'deferred')")
    busy = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM trigger")
    return busy == 0 and cur.fetchone()[0] == 0


def measure(stack, db, dag_id: str, params: dict, say) -> dict:
    m, seconds = params["waiting"], params["window_s"]
    _wait("nothing running or deferred", lambda: _quiet(db), timeout=600, interval=1)
    say(f"{dag_id}: idle window ({seconds} s)")
    idle = window(stack, db, seconds)
    admin = stack.client("admin")
    # far enough ahead that every run is deferred before its moment comes, whatever the machine
    start_at = datetime.now(UTC) + timedelta(seconds=600 + m * RAMP_ALLOWANCE_S_PER_RUN)
    say(f"{dag_id}: starting {m} runs waiting until {start_at.isoformat(timespec='seconds')}")
    procs = _processes(stack)
    cpu_before = {name: _usage(p)[0] for name, p in procs.items()}
    ramp_start = time.perf_counter()
    run_ids = []
    for _ in range(m):
        response = admin.post(
            f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": {"start_at": start_at.isoformat()}}
        )
        response.raise_for_status()
        run_ids.append(response.json()["dag_run_id"])
    reached, last_note = 0, 0.0
    deadline = time.monotonic() + max(600, m * 20)
    while time.monotonic() < deadline:
        holds = _holds(db, dag_id)
        reached = holds.get("deferred", 0)
        if reached + holds.get("failed", 0) + holds.get("upstream_failed", 0) >= m:
            break
        if time.monotonic() - last_note > 30:
            say(f"  {reached}/{m} deferred after {time.perf_counter() - ramp_start:.0f} s")
            last_note = time.monotonic()
        time.sleep(1)
    ramp_s = time.perf_counter() - ramp_start
    ramp_cpu = {name: _usage(p)[0] - cpu_before[name] for name, p in procs.items()}
    say(f"{dag_id}: {reached}/{m} deferred after {ramp_s:.0f} s; window ({seconds} s)")
    waiting = window(stack, db, seconds)
    states = _states(db, dag_id)
    say(f"{dag_id}: ending the {len(run_ids)} runs (marked failed)")
    for run_id in run_ids:
        admin.patch(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"}).raise_for_status()
    t_idle, t_wait = idle["processes"]["triggerer"], waiting["processes"]["triggerer"]
    return {
        "waiting_requested": m,
        "deferred_reached": reached,
        "ramp_s": ramp_s,
        "ramp_cpu_s": ramp_cpu,
        "task_states": states,
        "idle": idle,
        "waiting": waiting,
        "triggerer_cpu_percent": t_wait["cpu_percent"],
        "triggerer_cpu_percent_idle": t_idle["cpu_percent"],
        "triggerer_rss_growth_mib": t_wait["rss_mib_max"] - t_idle["rss_mib_max"],
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
